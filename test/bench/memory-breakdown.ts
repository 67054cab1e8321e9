/**
 * Where the memory of idle connections goes (issue 8): opens N idle MQTT
 * connections to one broker process and reads its memory through the
 * inspector, before and after a full GC, so resident growth is split into
 * live heap, connect-time garbage, external/array buffers and the rest
 * (native: libuv handles, malloc, V8 pages kept).
 *
 *   node --import tsx test/bench/memory-breakdown.ts [thingmesh|cluster|aedes|net] [N]
 *     cluster: a thingmesh node with its own Redis (the clustered code path)
 *   node --import tsx test/bench/memory-breakdown.ts thingmesh s6 [seconds]
 *     the attacks of chaos S6 against a cluster node (its own Redis, S6's
 *     limits): 100,000 filters, 1023 KiB QoS1 at 50/s for `seconds`, 65,535
 *     QoS1 to a persistent subscriber that never PUBACKs; memory sampled every
 *     250 ms without forcing a GC, peak and end of each phase
 *   MEM_SNAPSHOT=1   also takes a heap snapshot and lists the object kinds
 *                    that grew by at least N/2 instances (self sizes, per connection)
 *   MEM_SNAPSHOT_FILE=/tmp/x  also writes them as /tmp/x.1.heapsnapshot, /tmp/x.2.heapsnapshot
 *   MEM_ALLOC=1      samples allocations while the connections open (garbage included) and lists
 *                    the allocating stacks, bytes per connection
 *   MEM_ALLOC_GROUPS=emptyQueue,eos  with MEM_ALLOC: also the bytes per connection of all stacks
 *                    holding each of these function names or files (a stack may count in several)
 *   MEM_ALLOC_OLD=1  with MEM_ALLOC: leave out what the young generation's scavenges collected, so
 *                    the sites listed are what got promoted (live, or old-space garbage that only a
 *                    full GC frees: the part of the connect's garbage that stays resident)
 *   MEM_WATCH=1,5,15  seconds after the last CONNACK at which RSS is read without forcing a GC
 *                    (default 1, the bench's wait)
 *   MEM_BASELINE_WAIT=30  seconds the fresh broker idles before the baseline (default 2)
 *   MEM_ENV="K=V …"  environment for the broker process (e.g. glibc's MALLOC_MMAP_THRESHOLD_)
 *   MEM_ALLOC_PHASE=subscriptions|payloads|flood  (s6) allocation sites of that phase
 *   MEM_FLAGS="--max-semi-space-size=1"  extra node flags for the broker process
 *   MEM_BROKER_ARGS="--foo 1"            extra thingmesh options
 *
 * `net` is a bare `net.Server` that keeps each socket and reads from it: the
 * floor any Node broker pays per socket.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import WebSocket from 'ws'
import { startNodeProcess } from '../helpers/node.ts'
import { startRedis } from '../helpers/redis.ts'
import { freePort } from '../helpers/ports.ts'
import { NO_LIMITS } from './brokers.ts'
import { close as closeMqtt, connect as connectMqtt } from '../helpers/mqtt.ts'

const kind = process.argv[2] ?? 'thingmesh'
const scenario = process.argv[3] === 's6' ? 's6' : 'idle'
const N = scenario === 'idle' ? Number(process.argv[3] ?? 10_000) : 0
const SECONDS = scenario === 's6' ? Number(process.argv[4] ?? 10) : 0
const flags = (process.env.MEM_FLAGS ?? '').split(' ').filter(Boolean)
const brokerArgs = (process.env.MEM_BROKER_ARGS ?? '').split(' ').filter(Boolean)
/** MEM_ENV="MALLOC_ARENA_MAX=2 …": environment of the broker process (glibc malloc tunables, say). */
const brokerEnv = Object.fromEntries((process.env.MEM_ENV ?? '').split(' ').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
const execArgv = ['--expose-gc', '--inspect=127.0.0.1:0', ...flags]

const NET_SERVER = `
const net = require('node:net'); const kept = new Set()
net.createServer((s) => { kept.add(s); s.on('data', (d) => { if (d[0] === 0x10) s.write(Buffer.from([0x20, 2, 0, 0])) }); s.on('close', () => kept.delete(s)) })
  .listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('listening\\n'))`

interface Broker { port: number, pid: number, stderr: () => string, stop: () => void }

async function start (): Promise<Broker> {
  if (kind === 'thingmesh' && scenario === 's6') {
    const redis = await startRedis()
    const n = await startNodeProcess({ redis: redis.url, args: ['--log-level', 'info', '--max-connections-per-ip', '0', '--connect-rate-per-ip', '0', '--publish-rate-per-client', '0', '--max-queued-messages', '1000', ...brokerArgs], execArgv, env: brokerEnv })
    return { port: n.port, pid: n.proc.pid!, stderr: n.log, stop: () => { n.proc.kill('SIGKILL'); void redis.stop() } }
  }
  if (kind === 'thingmesh') {
    const n = await startNodeProcess({ args: [...NO_LIMITS, ...brokerArgs], execArgv, env: brokerEnv })
    return { port: n.port, pid: n.proc.pid!, stderr: n.log, stop: () => { n.proc.kill('SIGKILL') } }
  }
  if (kind === 'cluster') {
    const redis = await startRedis()
    const n = await startNodeProcess({ redis: redis.url, args: [...NO_LIMITS, ...brokerArgs], execArgv, env: brokerEnv })
    return { port: n.port, pid: n.proc.pid!, stderr: n.log, stop: () => { n.proc.kill('SIGKILL'); void redis.stop() } }
  }
  const port = await freePort()
  const script = fileURLToPath(new URL('./aedes-plain.ts', import.meta.url))
  const args = kind === 'aedes' ? [...execArgv, '--import', 'tsx', script, String(port)] : [...execArgv, '-e', NET_SERVER, String(port)]
  const env = { ...process.env, ...brokerEnv }
  delete env.NODE_OPTIONS
  const proc: ChildProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let err = ''
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve() })
    proc.once('exit', (code) => reject(new Error(`${kind} exited with ${code}: ${err}`)))
  })
  return { port, pid: proc.pid!, stderr: () => err, stop: () => { proc.kill('SIGKILL') } }
}

/** A minimal Chrome DevTools Protocol client over the broker's inspector socket. */
class Inspector {
  private id = 0
  private readonly pending = new Map<number, (r: { result?: unknown, error?: unknown }) => void>()
  private readonly listeners = new Map<string, (p: Record<string, unknown>) => void>()
  private constructor (private readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString()) as { id?: number, method?: string, params?: Record<string, unknown>, result?: unknown, error?: unknown }
      if (m.id !== undefined) this.pending.get(m.id)?.(m)
      else if (m.method) this.listeners.get(m.method)?.(m.params ?? {})
    })
  }

  static async open (stderr: () => string): Promise<Inspector> {
    let url: string | undefined
    for (let i = 0; i < 200 && !url; i++) {
      url = /Debugger listening on (ws:\/\/\S+)/.exec(stderr())?.[1]
      if (!url) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (!url) throw new Error('no inspector URL on the broker\'s stderr')
    const ws = new WebSocket(url, { maxPayload: 1 << 30 })
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return new Inspector(ws)
  }

  send (method: string, params: object = {}): Promise<unknown> {
    const id = ++this.id
    return new Promise((resolve, reject) => {
      this.pending.set(id, (r) => { this.pending.delete(id); if (r.error) reject(new Error(JSON.stringify(r.error))); else resolve(r.result) })
      this.ws.send(JSON.stringify({ id, method, params }))
    })
  }

  on (method: string, fn: (p: Record<string, unknown>) => void): void { this.listeners.set(method, fn) }

  async evaluate<T> (expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true }) as { result: { value: string } }
    return JSON.parse(r.result.value) as T
  }

  close (): void { this.ws.close() }
}

interface Usage { rss: number, heapTotal: number, heapUsed: number, external: number, arrayBuffers: number, spaces: Record<string, number> }
const USAGE = `(() => { const v8 = process.getBuiltinModule('node:v8'); const spaces = {};
  for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.space_size;
  return JSON.stringify({ ...process.memoryUsage(), spaces }) })()`
const usage = (i: Inspector, gc: boolean): Promise<Usage> => i.evaluate<Usage>(gc ? `(gc(), gc(), ${USAGE})` : USAGE)

/** CPU time (user + system) the process has used, ms. */
function cpuMs (pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}

function rssKb (pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1])
}

function connectPacket (clientId: string): Buffer {
  const id = Buffer.from(clientId)
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 120, id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

async function openIdle (port: number, n: number): Promise<Socket[]> {
  const sockets: Socket[] = []
  const open = (i: number): Promise<void> => new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1')
    sockets.push(s)
    s.once('error', reject)
    s.once('connect', () => s.write(connectPacket(`bench-idle-${i}`)))
    s.once('data', (d) => { if (d[0] === 0x20 && d[3] === 0) resolve(); else reject(new Error(`CONNACK ${d[3]}`)) })
  })
  for (let i = 0; i < n; i += 200) await Promise.all(Array.from({ length: Math.min(200, n - i) }, (_, k) => open(i + k)))
  return sockets
}

let snapshots = 0
/** Heap snapshot → self size and count per (node type, constructor name). */
async function snapshot (i: Inspector): Promise<Map<string, { count: number, size: number }>> {
  const chunks: string[] = []
  i.on('HeapProfiler.addHeapSnapshotChunk', (p) => { chunks.push(p.chunk as string) })
  await i.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
  if (process.env.MEM_SNAPSHOT_FILE) writeFileSync(`${process.env.MEM_SNAPSHOT_FILE}.${++snapshots}.heapsnapshot`, chunks.join(''))
  const snap = JSON.parse(chunks.join('')) as { snapshot: { meta: { node_fields: string[], node_types: [string[]] } }, nodes: number[], strings: string[] }
  const f = snap.snapshot.meta.node_fields
  const width = f.length
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map((k) => f.indexOf(k))
  const types = snap.snapshot.meta.node_types[0]
  const out = new Map<string, { count: number, size: number }>()
  for (let k = 0; k < snap.nodes.length; k += width) {
    const type = types[snap.nodes[k + typeAt]]
    let name = snap.strings[snap.nodes[k + nameAt]]
    if (type === 'string' || type === 'concatenated string' || type === 'sliced string') name = '(string)'
    else if (type === 'code' || type === 'number') name = `(${type})`
    else if (type === 'array') name = `(array) ${name.slice(0, 40)}`
    else if (type === 'closure') name = `(closure) ${name.slice(0, 40)}`
    else name = `${type}:${name.slice(0, 60)}`
    const e = out.get(name) ?? { count: 0, size: 0 }
    e.count++
    e.size += snap.nodes[k + sizeAt]
    out.set(name, e)
  }
  return out
}

/** Resident KB per mapping (start address → [size KB, rss KB, name]), from /proc/<pid>/smaps. */
function mappings (pid: number): Map<string, [number, number, string]> {
  const out = new Map<string, [number, number, string]>()
  let cur: [number, number, string] | null = null
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head) { cur = [0, 0, head[3] || '(anon)']; out.set(head[1], cur); continue }
    const m = /^(Size|Rss):\s+(\d+) kB/.exec(line)
    if (m && cur) cur[m[1] === 'Size' ? 0 : 1] = Number(m[2])
  }
  return out
}

/** Resident growth per kind of mapping: by name, anonymous ones by size (V8 pages are 256 KB, malloc arenas 64 MB). */
function mappingGrowth (a: Map<string, [number, number, string]>, b: Map<string, [number, number, string]>): string[] {
  const kindOf = (size: number, name: string): string => name !== '(anon)' ? (name.startsWith('/') ? 'files' : name) : size <= 256 ? 'anon ≤ 256 KB' : size <= 4096 ? 'anon ≤ 4 MB' : size < 65536 ? 'anon < 64 MB' : 'anon ≥ 64 MB'
  const sum = (m: Map<string, [number, number, string]>): Map<string, number> => {
    const out = new Map<string, number>()
    for (const [size, rss, name] of m.values()) { const k = kindOf(size, name); out.set(k, (out.get(k) ?? 0) + rss) }
    return out
  }
  const sa = sum(a)
  const rows: string[] = []
  for (const [k, v] of sum(b)) {
    const d = v - (sa.get(k) ?? 0)
    if (Math.abs(d) >= 256) rows.push(`    ${k}: ${(v / 1024).toFixed(1)} MB resident (${d >= 0 ? '+' : ''}${(d / 1024).toFixed(1)} MB)`)
  }
  return rows
}

interface ProfileNode { callFrame: { functionName: string, url: string, lineNumber: number }, selfSize: number, children: ProfileNode[] }

/** Sampled allocation bytes per innermost frames (the `depth` innermost frames of each stack). */
function allocationSites (head: ProfileNode, depth: number): Array<[string, number]> {
  const out = new Map<string, number>()
  const frame = (n: ProfileNode): string => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/main\//, '')}:${n.callFrame.lineNumber + 1}`
  const walk = (n: ProfileNode, stack: string[]): void => {
    const s = [...stack, frame(n)]
    if (n.selfSize > 0) { const k = s.slice(-depth).reverse().join(' < '); out.set(k, (out.get(k) ?? 0) + n.selfSize) }
    for (const c of n.children) walk(c, s)
  }
  walk(head, [])
  return [...out].sort((a, b) => b[1] - a[1])
}

const kb = (bytes: number): string => (bytes / 1024).toFixed(2)

/** Memory of the broker without forcing a GC: V8's figures and the two kinds of resident mapping that move. */
async function sample (i: Inspector, pid: number): Promise<Record<string, number>> {
  const u = await usage(i, false)
  let mallocHeap = 0
  let anon = 0
  for (const [, rss, name] of mappings(pid).values()) { if (name === '[heap]') mallocHeap += rss; else if (name === '(anon)') anon += rss }
  return { rss: rssKb(pid) * 1024, heapUsed: u.heapUsed, heapTotal: u.heapTotal, external: u.external, arrayBuffers: u.arrayBuffers, 'malloc [heap]': mallocHeap * 1024, 'anonymous mappings': anon * 1024 }
}

const mqttPacket = createRequire(import.meta.url)('mqtt-packet') as { generate(p: object): Buffer }

/** A raw MQTT connection that never acknowledges anything; counts what it receives. */
async function rawClient (port: number, clientId: string, clean: boolean): Promise<{ s: Socket, received: () => number }> {
  const s = tcpConnect(port, '127.0.0.1')
  s.on('error', () => {})
  let bytes = 0
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 60 })))
    s.once('data', (d: Buffer) => d[0] === 0x20 && d[3] === 0 ? resolve() : reject(new Error(`CONNACK ${d[3]}`)))
  })
  s.on('data', (d: Buffer) => { bytes += d.length })
  return { s, received: () => bytes }
}

/** The three attacks of chaos S6, one after the other, with the broker's memory sampled every 250 ms. */
async function s6 (b: Broker, i: Inspector): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const mb = (v: number): string => (v / 1048576).toFixed(1)
  const start = await sample(i, b.pid)
  const cpu0 = cpuMs(b.pid)
  let overall = start.rss
  let peak = { ...start }
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      const s = await sample(i, b.pid)
      for (const k of Object.keys(s)) peak[k] = Math.max(peak[k], s[k])
      overall = Math.max(overall, s.rss)
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
  })()
  const phase = async (name: string, run: () => Promise<string>): Promise<void> => {
    const before = await sample(i, b.pid)
    peak = { ...before }
    const profiled = process.env.MEM_ALLOC_PHASE === name
    if (profiled) await i.send('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    const what = await run()
    if (profiled) {
      const head = (await i.send('HeapProfiler.stopSampling') as { profile: { head: ProfileNode } }).profile.head
      const sites = allocationSites(head, Number(process.env.MEM_ALLOC_DEPTH ?? 3))
      console.log(`  allocated during ${name} (sampled): ${mb(sites.reduce((a, [, v]) => a + v, 0))} MB; top sites:`)
      for (const [k, v] of sites.slice(0, 30)) console.log(`    ${mb(v).padStart(6)} MB  ${k}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const after = await sample(i, b.pid)
    console.log(`  ${name}: ${what}`)
    for (const k of Object.keys(before)) console.log(`    ${k.padEnd(20)} ${mb(before[k]).padStart(6)} MB at its start, peak +${mb(peak[k] - before[k])}, 1 s after +${mb(after[k] - before[k])} (+${mb(after[k] - start[k])} since the first phase)`)
  }
  console.log(`${kind} S6 phases, node flags [${flags.join(' ')}], env [${process.env.MEM_ENV ?? ''}], load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`)
  await phase('subscriptions', async () => {
    const sub = await rawClient(b.port, 'mem-subs', true)
    let acks = 0
    let waiting: (() => void) | null = null
    sub.s.on('data', (d: Buffer) => { for (let k = 0; k < d.length; k++) if (d[k] === 0x90) acks++; waiting?.() })
    for (let f = 0, mid = 1; f < 100_000; f += 100, mid = (mid % 65535) + 1) {
      const want = acks + 1
      sub.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: mid, subscriptions: Array.from({ length: 100 }, (_v, k) => ({ topic: `s6/f/${f + k}`, qos: 1 })) }))
      // 0x90 may also occur inside a SUBACK body: wait for at least one more, bounded.
      await new Promise<void>((resolve) => { waiting = () => { if (acks >= want) resolve() }; setTimeout(resolve, 2000) })
    }
    sub.s.destroy()
    return '100,000 filters in SUBSCRIBEs of 100'
  })
  await phase('payloads', async () => {
    const pub = await connectMqtt(b.port, { clientId: 'mem-heavy' })
    const t0 = Date.now()
    let sent = 0
    while (Date.now() - t0 < SECONDS * 1000 && pub.connected) {
      const tick = Date.now()
      pub.publish('s6/heavy', Buffer.alloc(1024 * 1024 - 1024, 2), { qos: 1 })
      sent++
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 20 - (Date.now() - tick))))
    }
    await closeMqtt(pub)
    return `${sent} × 1023 KiB QoS1 in ${Date.now() - t0} ms`
  })
  await phase('flood', async () => {
    const lazy = await rawClient(b.port, 'mem-lazy', false)
    lazy.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's6/flood', qos: 1 }] }))
    const pub = await connectMqtt(b.port, { clientId: 'mem-flood' })
    const before = lazy.received()
    for (let k = 0; k < 50 && lazy.received() === before; k++) { await pub.publishAsync('s6/flood', 'warm', { qos: 1 }); await new Promise((resolve) => setTimeout(resolve, 100)) }
    let acked = 0
    if (process.env.MEM_ALLOC) await i.send('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
    for (let n = 0; n < 65_535 && pub.connected; n += 500) {
      await Promise.all(Array.from({ length: Math.min(500, 65_535 - n) }, () => pub.publishAsync('s6/flood', Buffer.alloc(64, 3), { qos: 1 }).then(() => { acked++ }, () => {})))
    }
    if (process.env.MEM_ALLOC) {
      const head = (await i.send('HeapProfiler.stopSampling') as { profile: { head: ProfileNode } }).profile.head
      const sites = allocationSites(head, Number(process.env.MEM_ALLOC_DEPTH ?? 3))
      const total = sites.reduce((a, [, v]) => a + v, 0)
      console.log(`  allocated during the flood (sampled): ${(total / 65_535).toFixed(0)} B per message; top sites:`)
      for (const [k, v] of sites.slice(0, 40)) console.log(`    ${(v / 65_535).toFixed(0).padStart(6)} B  ${k}`)
    }
    if (process.env.MEM_SNAPSHOT) {
      const kinds = [...await snapshot(i)].sort((x, y) => y[1].size - x[1].size).slice(0, 25)
      console.log('  heap at the end of the flood (all objects, largest kinds):')
      for (const [name, e] of kinds) console.log(`    ${mb(e.size).padStart(7)} MB ${String(e.count).padStart(8)} × ${name}`)
    }
    await closeMqtt(pub)
    lazy.s.destroy()
    return `${acked} QoS1 × 64 B to a persistent subscriber that never PUBACKs`
  })
  sampling = false
  await sampler
  const end = await sample(i, b.pid)
  const gc = await usage(i, true)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const endGc = await sample(i, b.pid)
  console.log(`  peak RSS +${mb(overall - start.rss)} MB over the start (the chaos S6 criterion: < 50 MB); broker CPU ${((cpuMs(b.pid) - cpu0) / 1000).toFixed(1)} s`)
  console.log(`  end: RSS +${mb(end.rss - start.rss)} MB over the start; after a full GC +${mb(endGc.rss - start.rss)} MB (heapUsed ${mb(gc.heapUsed)} MB, malloc [heap] +${mb(endGc['malloc [heap]'] - start['malloc [heap]'])} MB)`)
}

const broker = await start()
const insp = await Inspector.open(broker.stderr)
if (scenario === 's6') {
  try { await s6(broker, insp) } finally { insp.close(); broker.stop() }
  process.exit(0)
}
try {
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.MEM_BASELINE_WAIT ?? 2) * 1000))
  const rss0 = rssKb(broker.pid)
  const u0 = await usage(insp, true)
  const snap0 = process.env.MEM_SNAPSHOT ? await snapshot(insp) : null
  const rss0gc = rssKb(broker.pid)
  const maps0 = mappings(broker.pid)
  const load = loadavg().map((l) => l.toFixed(2)).join(' ')
  if (process.env.MEM_ALLOC) await insp.send('HeapProfiler.startSampling', { samplingInterval: 256, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !process.env.MEM_ALLOC_OLD })
  const cpu0 = cpuMs(broker.pid)
  const t0 = Date.now()
  const sockets = await openIdle(broker.port, N)
  const cpuConnect = cpuMs(broker.pid) - cpu0
  const wallConnect = Date.now() - t0
  const alloc = process.env.MEM_ALLOC ? (await insp.send('HeapProfiler.stopSampling') as { profile: { head: ProfileNode } }).profile.head : null
  const opened = Date.now()
  const watch: Array<[number, number]> = []
  for (const sec of (process.env.MEM_WATCH ?? '1').split(',').map(Number)) {
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, opened + sec * 1000 - Date.now())))
    watch.push([sec, rssKb(broker.pid)])
  }
  const rss1 = watch[0][1]
  const u1raw = await usage(insp, false)
  const u1 = await usage(insp, true)
  await new Promise((resolve) => setTimeout(resolve, 500))
  const rss1gc = rssKb(broker.pid)
  const maps1 = mappings(broker.pid)
  const per = (a: number, b: number): string => kb((b - a) / N)
  console.log(`${kind} ${N} idle connections, node flags [${flags.join(' ')}], load ${load}`)
  console.log(`  broker CPU while connecting: ${(cpuConnect / N * 1000).toFixed(0)} µs per connection (${wallConnect} ms wall for all)`)
  console.log(`  RSS growth per connection (the bench figure, no forced GC): ${watch.map(([sec, r]) => `${((r - rss0) / N).toFixed(2)} KB at ${sec} s`).join(', ')}`)
  console.log(`  RSS growth per connection after full GC:                   ${((rss1gc - rss0gc) / N).toFixed(2)} KB`)
  console.log(`  heapUsed per connection, before GC / live after GC:        ${per(u0.heapUsed, u1raw.heapUsed)} / ${per(u0.heapUsed, u1.heapUsed)} KB`)
  console.log(`  heapTotal (V8 pages held) per connection, before / after GC: ${per(u0.heapTotal, u1raw.heapTotal)} / ${per(u0.heapTotal, u1.heapTotal)} KB`)
  console.log(`  external / arrayBuffers per connection:                    ${per(u0.external, u1.external)} / ${per(u0.arrayBuffers, u1.arrayBuffers)} KB`)
  console.log(`  RSS not in V8 heap or external, per connection (after GC): ${kb(((rss1gc - rss0gc) * 1024 - (u1.heapTotal - u0.heapTotal) - (u1.external - u0.external)) / N)} KB`)
  for (const s of Object.keys(u1.spaces)) {
    const before = u1raw.spaces[s] - u0.spaces[s]
    const after = u1.spaces[s] - u0.spaces[s]
    if (Math.abs(before) > 64 * 1024 || Math.abs(after) > 64 * 1024) console.log(`    ${s}: +${(before / 1048576).toFixed(1)} MB before GC, +${(after / 1048576).toFixed(1)} MB after`)
  }
  console.log('  resident growth by mapping, after GC ([heap] is malloc\'s main arena; V8 pages are anonymous):')
  for (const r of mappingGrowth(maps0, maps1)) console.log(r)
  if (alloc) {
    const sites = allocationSites(alloc, Number(process.env.MEM_ALLOC_DEPTH ?? 3))
    const total = sites.reduce((a, [, v]) => a + v, 0)
    console.log(`  allocated while connecting (sampled, ${process.env.MEM_ALLOC_OLD ? 'promoted only: live or old-space garbage' : 'garbage included'}): ${(total / N / 1024).toFixed(1)} KB per connection; top sites:`)
    for (const [k, v] of sites.slice(0, 40)) console.log(`    ${(v / N).toFixed(0).padStart(6)} B  ${k}`)
    const groups = (process.env.MEM_ALLOC_GROUPS ?? '').split(',').filter(Boolean)
    if (groups.length > 0) {
      const whole = allocationSites(alloc, 1000)
      console.log('  allocated while connecting, by stacks holding:')
      for (const g of groups) console.log(`    ${(whole.filter(([k]) => k.includes(g)).reduce((a, [, v]) => a + v, 0) / N).toFixed(0).padStart(6)} B  ${g}`)
    }
  }
  if (snap0) {
    const snap1 = await snapshot(insp)
    const rows = [...snap1].map(([name, e]) => {
      const b = snap0.get(name) ?? { count: 0, size: 0 }
      return { name, count: e.count - b.count, size: e.size - b.size }
    }).filter((r) => r.count >= N / 2).sort((a, b) => b.size - a.size)
    let total = 0
    console.log('  heap snapshot: kinds that grew by ≥ N/2 objects (per connection: objects × self bytes)')
    for (const r of rows.slice(0, 40)) {
      total += r.size
      console.log(`    ${(r.size / N).toFixed(0).padStart(6)} B  ${(r.count / N).toFixed(2).padStart(5)} ×  ${r.name}`)
    }
    console.log(`    total of the listed kinds: ${(total / N).toFixed(0)} B per connection`)
  }
  for (const s of sockets) s.destroy()
} finally {
  insp.close()
  broker.stop()
}
process.exit(0)
