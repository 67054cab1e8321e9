/**
 * `npm run bench:subs`: scale of subscriptions (issue 8). "With 50,000
 * clients each holding its own wildcard subscription (`things/{id}/#`) across
 * the cluster, publish throughput stays within 0.8x of the same test with
 * exact subscriptions."
 *
 * For each variant (wildcard `things/{id}/#`, exact `things/{id}/temp`), on a
 * fresh NODES-node cluster: CLIENTS subscribers, client i on node i % NODES,
 * each subscribes its own filter; then PUBLISHERS publishers spread over the
 * nodes send MESSAGES QoS0 64-byte messages to `things/{random id}/temp`
 * (the same pseudo-random ids in both variants), as fast as the sockets take
 * them, and the subscribers count deliveries.
 *
 * Subscribers are raw sockets (test/bench/mqtt-wire.ts) in child processes of
 * at most PER_WORKER each: one process may hold only `ulimit -n` descriptors,
 * and MQTT.js clients would make the bench the limit. Each broker node must
 * hold its own share too, so CLIENTS / NODES must fit under that limit:
 * checked before anything starts.
 *
 * Options (flag or environment): --clients SUBS_CLIENTS (50000), --nodes
 * SUBS_NODES (2), --messages SUBS_MESSAGES (200000), --publishers
 * SUBS_PUBLISHERS (4), --seconds SUBS_SECONDS (60, publishing bound),
 * --per-worker SUBS_PER_WORKER (10000), --runs SUBS_RUNS (1),
 * --variants SUBS_VARIANTS (wildcard,exact).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { connect as tcpConnect, type Socket } from 'node:net'
import { cpus, loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { cluster, type BrokerUnderTest } from './brokers.ts'
import { num, option } from './options.ts'
import { connectPacket, packetReader, TYPE } from './mqtt-wire.ts'
import { cpuPercent, cpuSample, ephemeralPorts, openFileLimit, rssMiB } from './procstat.ts'
import type { WorkerReply, WorkerRequest } from './subs-worker.ts'
import { killWithTest } from '../helpers/children.ts'
import { close, connect, type MqttClient } from '../helpers/mqtt.ts'


const CLIENTS = num('clients', 'SUBS_CLIENTS', 50_000)
const NODES = num('nodes', 'SUBS_NODES', 2)
const MESSAGES = num('messages', 'SUBS_MESSAGES', 200_000)
const PUBLISHERS = num('publishers', 'SUBS_PUBLISHERS', 4)
const PUBLISH_S = num('seconds', 'SUBS_SECONDS', 60)
const RUNS = num('runs', 'SUBS_RUNS', 1)
const VARIANTS = option('variants', 'SUBS_VARIANTS', 'wildcard,exact').split(',').filter(Boolean)
for (const v of VARIANTS) if (v !== 'wildcard' && v !== 'exact') throw new Error(`unknown variant ${v}; known: wildcard, exact`)
const TEMPLATE: Record<string, string> = { wildcard: 'things/{id}/#', exact: 'things/{id}/temp' }
/** Subscribing everyone may take minutes on a loaded 2-core box; a stall still ends the run. */
const SUBSCRIBE_TIMEOUT_MS = num('subscribe-seconds', 'SUBS_SUBSCRIBE_SECONDS', 900) * 1000
/** After publishing stops, deliveries still in flight get this long to arrive (they stop early once all are in). */
const DRAIN_MS = 30_000
/** Concurrent CONNECT/SUBSCRIBE handshakes per worker. */
const HANDSHAKES = 100
const PAYLOAD = Buffer.alloc(64, 'x')
const WORKER = fileURLToPath(new URL('./subs-worker.ts', import.meta.url))

/**
 * Descriptors a node (or worker) needs besides its clients: Redis links, the
 * listeners, the HTTP server, the bench's publishers and probes, stdio.
 */
const FD_MARGIN = 200

/** Every limit that would make the run measure the machine's configuration instead of the broker, checked up front. */
function preflight (): number {
  const { soft, hard } = openFileLimit()
  const perNode = Math.ceil(CLIENTS / NODES)
  if (perNode + FD_MARGIN > soft) {
    const nodesNeeded = Math.ceil(CLIENTS / (soft - FD_MARGIN))
    throw new Error(`${CLIENTS} clients over ${NODES} nodes is ${perNode} connections per node, but a process here may open only ${soft} files ` +
      `(ulimit -n; hard limit ${hard}${soft < hard ? `: run \`ulimit -n ${hard}\` first` : '; raising it needs CAP_SYS_RESOURCE'}). ` +
      `Use --nodes ${nodesNeeded} or fewer --clients.`)
  }
  const ports = ephemeralPorts()
  if (perNode > ports - 1000) throw new Error(`${perNode} connections to one node would exhaust the ${ports} ephemeral ports of 127.0.0.1 (net.ipv4.ip_local_port_range); use more --nodes`)
  return Math.min(num('per-worker', 'SUBS_PER_WORKER', 10_000), soft - FD_MARGIN)
}

let PER_WORKER = 0
try { PER_WORKER = preflight() } catch (err) {
  console.error(`bench:subs: ${(err as Error).message}`)
  process.exit(2)
}

// ---- subscriber workers ------------------------------------------------------

interface Worker { proc: ChildProcess, ask<R extends WorkerReply['op']>(req: WorkerRequest, op: R, timeoutMs: number): Promise<Extract<WorkerReply, { op: R }>> }

function startWorker (): Worker {
  const proc = killWithTest(fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }))
  return {
    proc,
    ask: (req, op, timeoutMs) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => { cleanup(); reject(new Error(`subscriber worker ${proc.pid}: no ${op} reply within ${timeoutMs} ms`)) }, timeoutMs)
      const onMessage = (m: WorkerReply): void => { if (m.op === op) { cleanup(); resolve(m as never) } }
      const onExit = (code: number | null): void => { cleanup(); reject(new Error(`subscriber worker ${proc.pid} exited (${code})`)) }
      const cleanup = (): void => { clearTimeout(timer); proc.off('message', onMessage); proc.off('exit', onExit) }
      proc.on('message', onMessage)
      proc.once('exit', onExit)
      proc.send(req)
    }),
  }
}

async function stopWorker (w: Worker): Promise<void> {
  if (w.proc.exitCode !== null || w.proc.signalCode !== null) return
  const exited = new Promise((resolve) => w.proc.once('exit', resolve))
  try { w.proc.send({ op: 'close' } satisfies WorkerRequest) } catch { w.proc.kill('SIGKILL') }
  const timer = setTimeout(() => w.proc.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

async function deliveries (workers: Worker[]): Promise<{ received: number, lastAt: number, dropped: number }> {
  const all = await Promise.all(workers.map((w) => w.ask({ op: 'stats' }, 'stats', 10_000)))
  return { received: all.reduce((s, r) => s + r.received, 0), lastAt: Math.max(...all.map((r) => r.lastAt)), dropped: all.reduce((s, r) => s + r.dropped, 0) }
}

// ---- publishers --------------------------------------------------------------

/** xorshift32: the same id sequence in both variants, so they route the same messages. */
function nextRandom (x: number): number {
  x ^= x << 13; x ^= x >>> 17; x ^= x << 5
  return x >>> 0
}

async function rawPublisher (port: number, clientId: string): Promise<Socket> {
  const s = tcpConnect({ port, host: '127.0.0.1', noDelay: true })
  s.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`publisher ${clientId}: no CONNACK`)), 30_000)
    s.once('close', () => reject(new Error(`publisher ${clientId}: closed before CONNACK`)))
    s.on('data', packetReader((type, body) => { if (type === TYPE.connack && body![1] === 0) { clearTimeout(timer); resolve() } }))
    s.write(connectPacket(clientId, 0))
  })
  return s
}

const CHUNK = 200
/** `things/<id>/temp` with a 64-byte payload: the remaining length stays under 128, one length byte. */
function fillChunk (buf: Buffer, ids: number[]): number {
  let o = 0
  for (const id of ids) {
    const topic = `things/${id}/temp`
    buf[o++] = 0x30
    buf[o++] = 2 + topic.length + PAYLOAD.length
    buf.writeUInt16BE(topic.length, o); o += 2
    o += buf.write(topic, o, 'latin1')
    o += PAYLOAD.copy(buf, o)
  }
  return o
}

/** Sends `count` messages (or until `stopAt`), honouring the socket's backpressure; `toFailed` counts those whose subscriber never subscribed. */
async function publishLoop (s: Socket, seed: number, count: number, stopAt: number, skip: Set<number>): Promise<{ sent: number, toFailed: number }> {
  const buf = Buffer.allocUnsafe(CHUNK * 128)
  let x = seed
  let sent = 0
  let toFailed = 0
  while (sent < count && performance.now() < stopAt && !s.destroyed) {
    const ids: number[] = []
    for (let k = 0; k < Math.min(CHUNK, count - sent); k++) {
      x = nextRandom(x)
      const id = x % CLIENTS
      if (skip.has(id)) toFailed++
      ids.push(id)
    }
    const n = fillChunk(buf, ids)
    const flushed = s.write(Buffer.from(buf.subarray(0, n)))
    sent += ids.length
    if (!flushed) {
      await new Promise<void>((resolve) => {
        const done = (): void => { clearTimeout(timer); s.off('drain', done); s.off('close', done); resolve() }
        const timer = setTimeout(done, Math.max(0, stopAt - performance.now()))
        s.once('drain', done)
        s.once('close', done)
      })
    } else await new Promise((resolve) => setImmediate(resolve))
  }
  return { sent, toFailed }
}

// ---- one variant on a fresh cluster ------------------------------------------

interface Result {
  variant: string
  subscribed: number
  failed: number
  firstError: string | null
  subscribeS: number
  published: number
  expected: number
  delivered: number
  dropped: number
  perSecond: number
  publishS: number
  rssAfterSubscribe: number[]
  rssEnd: number[]
  redisRss: number
  cpu: Record<string, number>
  machineBusy: number
}

/**
 * Waits until every node routes by the filters announced so far: a probe
 * client subscribes last on each node, and a publish from another node must
 * reach it. Interest changes are applied in order (a gap forces a full
 * resync), so once the last filter works, all earlier ones do.
 */
async function waitForInterest (b: BrokerUnderTest, template: string): Promise<void> {
  for (let j = 0; j < b.ports.length; j++) {
    const sub = await connect(b.ports[j], { clientId: `probe-sub-${j}` })
    const pub = await connect(b.ports[(j + 1) % b.ports.length], { clientId: `probe-pub-${j}` })
    try {
      await sub.subscribeAsync(template.replace('{id}', `probe${j}`), { qos: 0 })
      const got = new Promise<void>((resolve) => sub.once('message', () => resolve()))
      const stopAt = Date.now() + 120_000
      let arrived = false
      void got.then(() => { arrived = true })
      while (!arrived) {
        if (Date.now() > stopAt) throw new Error(`node ${j + 1}'s subscriptions were not routed from the others within 120 s`)
        pub.publish(`things/probe${j}/temp`, 'probe', { qos: 0 })
        await Promise.race([got, new Promise((resolve) => setTimeout(resolve, 200))])
      }
    } finally {
      await close(sub, pub)
    }
  }
}

async function redisPid (port: number): Promise<number> {
  const r = new Redis(port, '127.0.0.1')
  try { return Number(/process_id:(\d+)/.exec(await r.info('server'))![1]) } finally { r.disconnect() }
}

async function runVariant (variant: string): Promise<Result> {
  const b = await cluster(NODES)
  const workers: Worker[] = []
  const publishers: Socket[] = []
  try {
    const rPid = await redisPid(b.redisPort!)
    for (let from = 0; from < CLIENTS; from += PER_WORKER) workers.push(startWorker())
    process.stderr.write(`${variant}: subscribing ${CLIENTS} clients over ${NODES} nodes from ${workers.length} worker processes\n`)
    const t0 = performance.now()
    const replies = await Promise.all(workers.map((w, i) => w.ask({
      op: 'subscribe', ports: b.ports, from: i * PER_WORKER, to: Math.min(CLIENTS, (i + 1) * PER_WORKER), template: TEMPLATE[variant], concurrency: HANDSHAKES, timeoutMs: 30_000,
    }, 'subscribed', SUBSCRIBE_TIMEOUT_MS)))
    const subscribeS = (performance.now() - t0) / 1000
    const subscribed = replies.reduce((s, r) => s + r.ok, 0)
    const failedIds = new Set(replies.flatMap((r) => r.failedIds))
    const firstError = replies.find((r) => r.firstError)?.firstError ?? null
    process.stderr.write(`${variant}: ${subscribed} subscribed, ${failedIds.size} failed in ${subscribeS.toFixed(1)} s${firstError ? ` (first error: ${firstError})` : ''}\n`)
    await waitForInterest(b, TEMPLATE[variant])
    const rssAfterSubscribe = b.pids.map(rssMiB)

    for (let i = 0; i < PUBLISHERS; i++) {
      publishers.push(await rawPublisher(b.ports[i % b.ports.length], `pub-${i}`).catch((err: Error) => {
        // A node that went away during the subscribe phase: say which and why, not just ECONNREFUSED.
        throw new Error(`${variant}: publisher ${i} could not connect (${err.message}); last node log lines:\n${b.logTail?.() ?? ''}`)
      }))
    }
    const pids: Record<string, number> = { redis: rPid, 'bench publishers': process.pid }
    b.pids.forEach((pid, i) => { pids[`node b${i + 1}`] = pid })
    workers.forEach((w, i) => { pids[`worker ${i}`] = w.proc.pid! })
    const before = cpuSample(pids)
    const start = performance.timeOrigin + performance.now()
    const stopAt = performance.now() + PUBLISH_S * 1000
    process.stderr.write(`${variant}: publishing ${MESSAGES} messages from ${PUBLISHERS} publishers\n`)
    const sends = await Promise.all(publishers.map((s, i) => publishLoop(s, 0x9e3779b9 ^ (i + 1), Math.ceil(MESSAGES / PUBLISHERS), stopAt, failedIds)))
    const publishS = (performance.timeOrigin + performance.now() - start) / 1000
    const published = sends.reduce((s, r) => s + r.sent, 0)
    const expected = published - sends.reduce((s, r) => s + r.toFailed, 0)

    // Deliveries still in flight: wait until all arrived, or nothing arrived for 3 s, or DRAIN_MS.
    const drainUntil = Date.now() + DRAIN_MS
    let stats = await deliveries(workers)
    let lastProgress = Date.now()
    while (stats.received < expected && Date.now() < drainUntil && Date.now() - lastProgress < 3000) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      const next = await deliveries(workers)
      if (next.received > stats.received) lastProgress = Date.now()
      stats = next
    }
    const after = cpuSample(pids)
    // Subscribers the nodes closed (a node fenced or restarted under load, say): show why.
    if (stats.dropped > 0 || failedIds.size > 0) process.stderr.write(`${variant}: ${stats.dropped} subscribers dropped after SUBACK, ${failedIds.size} never subscribed; last node log lines:\n${b.logTail?.() ?? ''}\n`)
    const { perProcess, machineBusy, kernel, steal } = cpuPercent(before, after)
    const cpu: Record<string, number> = {}
    for (const [k, v] of Object.entries(perProcess)) {
      const key = k.startsWith('worker ') ? 'bench subscribers' : k
      cpu[key] = (cpu[key] ?? 0) + v
    }
    // Interrupts and softirqs (loopback TCP) and stolen time are charged to no process; whatever else ran
    // on the machine meanwhile (other benches, tests) took the rest.
    cpu['kernel irq/softirq'] = kernel * cpus().length
    cpu['steal'] = steal * cpus().length
    cpu['other processes'] = Math.max(0, machineBusy * cpus().length - Object.values(cpu).reduce((x, y) => x + y, 0))
    return {
      variant, subscribed, failed: failedIds.size, firstError, subscribeS,
      published, expected, delivered: stats.received, dropped: stats.dropped,
      perSecond: stats.received / Math.max(0.001, (stats.lastAt - start) / 1000),
      publishS, rssAfterSubscribe, rssEnd: b.pids.map(rssMiB), redisRss: rssMiB(rPid), cpu, machineBusy,
    }
  } finally {
    for (const s of publishers) s.destroy()
    await Promise.all(workers.map(stopWorker))
    await b.stop()
  }
}

// ---- report --------------------------------------------------------------------

/** Names the process that set the pace: the busiest, if it was near a whole core, else the shared cores. */
function limitOf (r: Result): string {
  // Summed groups (subscriber processes, others) are not one process that could saturate a core.
  const [name, pct] = Object.entries(r.cpu).filter(([k]) => k.startsWith('node') || k === 'redis' || k === 'bench publishers').sort((a, b) => b[1] - a[1])[0]
  const side = name.startsWith('node') ? 'broker' : name === 'redis' ? 'Redis' : 'bench'
  if (pct >= 90) return `${name} (${side}) at ${pct.toFixed(0)}% of a core`
  if (r.machineBusy >= 90) {
    const nodes = Object.entries(r.cpu).filter(([k]) => k.startsWith('node')).reduce((s, [, v]) => s + v, 0)
    const bench = Object.entries(r.cpu).filter(([k]) => k.startsWith('bench')).reduce((s, [, v]) => s + v, 0)
    return `the shared cores (${r.machineBusy.toFixed(0)}% busy): nodes ${nodes.toFixed(0)}%, bench ${bench.toFixed(0)}%, Redis ${(r.cpu.redis ?? 0).toFixed(0)}%, other processes ${(r.cpu['other processes'] ?? 0).toFixed(0)}%`
  }
  return `none saturated (busiest ${name} ${pct.toFixed(0)}%)`
}

const load0 = loadavg()
const results: Result[] = []
for (let run = 0; run < RUNS; run++) {
  for (const v of VARIANTS) {
    process.stderr.write(`run ${run + 1}/${RUNS}\n`)
    results.push(await runVariant(v))
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const f0 = (x: number): string => Math.round(x).toLocaleString('en-US')
const mib = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' / ')

console.log(`\nthingmesh bench:subs — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores, load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
console.log(`${CLIENTS} subscribers (raw sockets in ${Math.ceil(CLIENTS / PER_WORKER)} process${CLIENTS > PER_WORKER ? 'es' : ''}) over a ${NODES}-node cluster, each its own filter; ${PUBLISHERS} publishers over the nodes send ${MESSAGES} QoS0 64 B messages to things/{random id}/temp (at most ${PUBLISH_S} s); each message has exactly one subscriber.\n`)
console.log('| subscriptions | subscribed (failed) | connect + subscribe | deliveries/s | published | delivered | lost | node RSS MiB after subscribe → end | Redis RSS MiB |')
console.log('|---|---|---|---|---|---|---|---|---|')
for (const r of results) {
  console.log(`| ${TEMPLATE[r.variant]} | ${f0(r.subscribed)} (${r.failed}) | ${r.subscribeS.toFixed(1)} s | ${f0(r.perSecond)} | ${f0(r.published)} in ${r.publishS.toFixed(1)} s | ${f0(r.delivered)} | ${f0(r.expected - r.delivered)}${r.dropped > 0 ? ` (${r.dropped} subscribers dropped)` : ''} | ${mib(r.rssAfterSubscribe)} → ${mib(r.rssEnd)} | ${r.redisRss.toFixed(0)} |`)
}
const rank = (k: string): number => k.startsWith('node') ? 0 : k === 'redis' ? 1 : k.startsWith('bench') ? 2 : k === 'other processes' ? 4 : 3
const cpuKeys = [...new Set(results.flatMap((r) => Object.keys(r.cpu)))].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
console.log(`\nCPU while publishing and delivering, % of one core (bench subscribers: ${Math.ceil(CLIENTS / PER_WORKER)} processes together); machine busy is % of all ${cpus().length} cores; the limit is the busiest single process if it neared a whole core, else the shared cores:\n`)
console.log(`| subscriptions | ${cpuKeys.join(' | ')} | machine busy | limit |`)
console.log(`|---|${cpuKeys.map(() => '---|').join('')}---|---|`)
for (const r of results) console.log(`| ${TEMPLATE[r.variant]} | ${cpuKeys.map((k) => (r.cpu[k] ?? NaN).toFixed(0)).join(' | ')} | ${r.machineBusy.toFixed(0)}% | ${limitOf(r)} |`)
const of = (v: string): number[] => results.filter((r) => r.variant === v).map((r) => r.perSecond)
if (of('wildcard').length > 0 && of('exact').length > 0) {
  const ratio = median(of('wildcard')) / median(of('exact'))
  console.log(`\nwildcard / exact deliveries/s${RUNS > 1 ? ` (medians of ${RUNS} runs)` : ''}: **${ratio.toFixed(2)}x** (target ≥ 0.8x: ${ratio >= 0.8 ? 'met' : 'missed'})`)
}
const busiestOthers = Math.max(...results.map((r) => r.cpu['other processes'] ?? 0))
if (busiestOthers >= 50) console.log(`\nNot comparable: processes outside this bench used up to ${busiestOthers.toFixed(0)}% of a core during a measurement; re-run on a quiet machine.`)
process.exit(0)
