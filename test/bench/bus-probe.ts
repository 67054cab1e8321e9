/**
 * Diagnostics behind issue 8's QoS1 and cross-node latency figures: one
 * scenario against one broker, with what `npm run bench` does not print.
 *
 *   PROBE=qos1     the bench's QoS1 scenario, plus CPU % of every process
 *                  (bench client, nodes, Redis), machine busy %, and Redis'
 *                  own commandstats (calls and us per call) over the run
 *   PROBE=latency  the bench's latency scenario (publisher on the first node,
 *                  subscriber on the last; SAME=1 both on the first), p50/p90/p99/max
 *   PROBE=redis    the floor of one Redis hop: ioredis PUBLISH -> SUBSCRIBE at RATE msg/s
 *   PROBE=nagle    80-byte writes at RATE/s over loopback to a reader that never
 *                  answers (a QoS 0 publisher), with Nagle on (NODELAY unset) or off
 *
 * BROKER=cluster2|standalone|aedes|mosquitto (a key of brokers.ts).
 * Run: node --import tsx test/bench/bus-probe.ts
 */
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { connect as tcpConnect, createServer, type AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import hdr from 'hdr-histogram-js'
import { BROKERS, type BrokerUnderTest } from './brokers.ts'
import { num, option } from './options.ts'
import { cpuPercent, cpuSample } from './procstat.ts'
import { close, connect as connectMqtt, type MqttClient } from '../helpers/mqtt.ts'
import { startRedis } from '../helpers/redis.ts'

const PROBE = option('probe', 'PROBE', 'qos1')
const BROKER = option('broker', 'BROKER', 'cluster2')
const QOS1_MESSAGES = num('qos1-messages', 'BENCH_QOS1_MESSAGES', 20_000)
const RATE = num('rate', 'BENCH_RATE', 2000)
const SECONDS = num('latency-seconds', 'BENCH_LATENCY_SECONDS', 5)
const SAME = process.env.SAME === '1'
/** NODELAY=1: the bench's own client sockets without Nagle's algorithm (MQTT.js leaves it on). */
const NODELAY = process.env.NODELAY === '1'
const PAYLOAD = Buffer.alloc(64, 'x')

async function connect (port: number, opts: Parameters<typeof connectMqtt>[1]): Promise<MqttClient> {
  const c = await connectMqtt(port, opts)
  if (NODELAY) (c.stream as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true)
  return c
}

/** redis-server renames itself `redis-server 127.0.0.1:<port>`. */
function redisPid (port: number): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8')
      if (cmd.includes('redis-server') && cmd.includes(`:${port}`)) return Number(d)
    } catch { /* gone */ }
  }
  return undefined
}

type CommandStats = Map<string, { calls: number, usec: number }>
async function commandStats (r: Redis): Promise<CommandStats> {
  const info = await r.info('commandstats')
  const out: CommandStats = new Map()
  for (const m of info.matchAll(/cmdstat_([^:]+):calls=(\d+),usec=(\d+)/g)) out.set(m[1], { calls: Number(m[2]), usec: Number(m[3]) })
  return out
}

function pidsOf (b: BrokerUnderTest): Record<string, number> {
  const pids: Record<string, number> = { bench: process.pid }
  b.pids.forEach((p, i) => { pids[`node${i + 1}`] = p })
  const rp = b.redisPort === undefined ? undefined : redisPid(b.redisPort)
  if (rp !== undefined) pids.redis = rp
  return pids
}

async function qos1 (b: BrokerUnderTest): Promise<void> {
  const last = b.ports.at(-1)!
  const sub = await connect(last, { clientId: 'probe-q1-sub' })
  await sub.subscribeAsync('bench/q1/#', { qos: 1 })
  const pubs: MqttClient[] = []
  for (let i = 0; i < 10; i++) pubs.push(await connect(b.ports[i % b.ports.length], { clientId: `probe-q1-pub-${i}` }))
  const redis = b.redisPort === undefined ? undefined : new Redis(b.redisPort, '127.0.0.1')
  const stats0 = redis ? await commandStats(redis) : undefined
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  sub.on('message', () => { if (++received >= QOS1_MESSAGES) resolveDone() })
  const perWindow = Math.ceil(QOS1_MESSAGES / 100)
  // STRACE=<dir>: syscall counts of each node over the run (strace -c; slows the nodes, so only counts mean anything).
  const straces = process.env.STRACE ? b.pids.map((pid, i) => spawn('strace', ['-c', '-f', '-p', String(pid), '-o', `${process.env.STRACE}/node${i + 1}.txt`], { stdio: 'ignore' })) : []
  if (straces.length > 0) await new Promise((resolve) => setTimeout(resolve, 500))
  const before = cpuSample(pidsOf(b))
  const start = performance.now()
  await Promise.all([done, ...pubs.flatMap((p, i) => Array.from({ length: 10 }, async () => {
    for (let k = 0; k < perWindow; k++) await p.publishAsync(`bench/q1/${i}`, PAYLOAD, { qos: 1 })
  }))])
  const elapsed = performance.now() - start
  const cpu = cpuPercent(before, cpuSample(pidsOf(b)))
  for (const s of straces) s.kill('SIGINT')
  await Promise.all(straces.map((s) => new Promise((resolve) => s.once('exit', resolve))))
  console.log(`${b.name} qos1: ${Math.round(received / (elapsed / 1000))} msg/s over ${Math.round(elapsed)} ms`)
  console.log(`  cpu % of one core: ${Object.entries(cpu.perProcess).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}; machine busy ${cpu.machineBusy.toFixed(0)}% (softirq+irq ${cpu.kernel.toFixed(0)}%, steal ${cpu.steal.toFixed(0)}%)`)
  const usPerMsg = Object.entries(cpu.perProcess).map(([k, v]) => `${k} ${((v / 100) * elapsed * 1000 / received).toFixed(1)}`)
  console.log(`  cpu us per message: ${usPerMsg.join(', ')}`)
  if (redis && stats0) {
    const stats1 = await commandStats(redis)
    const rows: string[] = []
    for (const [k, v] of stats1) {
      const d = { calls: v.calls - (stats0.get(k)?.calls ?? 0), usec: v.usec - (stats0.get(k)?.usec ?? 0) }
      if (d.calls >= 10) rows.push(`${k} ${d.calls} calls ${(d.usec / d.calls).toFixed(1)} us/call (${(d.usec / 1000).toFixed(0)} ms)`)
    }
    console.log(`  redis: ${rows.join('; ')}`)
    redis.disconnect()
  }
  await close(sub, ...pubs)
}

async function latency (b: BrokerUnderTest): Promise<void> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  const sub = await connect(SAME ? b.ports[0] : b.ports.at(-1)!, { clientId: 'probe-lat-sub' })
  await sub.subscribeAsync('bench/lat', { qos: 0 })
  const pub = await connect(b.ports[0], { clientId: 'probe-lat-pub' })
  const total = RATE * SECONDS
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  // The first WARMUP messages (JIT, first Redis commands) are kept apart: WARMUP=500.
  const warmup = Number(process.env.WARMUP ?? 0)
  const warmHist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  sub.on('message', (_t, payload) => {
    ;(received < warmup ? warmHist : hist).recordValue(Math.max(1, Math.round((performance.now() - payload.readDoubleBE(0)) * 1000)))
    if (++received >= total) resolveDone()
  })
  // TAP=1: a pattern subscriber on every node's bus channel timestamps each
  // batch as Redis sends it out (the payload is a batch's last 64 bytes).
  const tapHist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  const tap = process.env.TAP === '1' && b.redisPort !== undefined ? new Redis(b.redisPort, '127.0.0.1', { noDelay: true }) : undefined
  if (tap) {
    tap.on('pmessageBuffer', (_p: Buffer, _c: Buffer, m: Buffer) => {
      if (m.length >= 64) tapHist.recordValue(Math.max(1, Math.round((performance.now() - m.readDoubleBE(m.length - 64)) * 1000)))
    })
    await tap.psubscribe('tm:{thingmesh}:bus:*')
  }
  const before = cpuSample(pidsOf(b))
  await sendPaced(total, (buf) => { pub.publish('bench/lat', buf, { qos: 0 }) })
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5000))])
  const cpu = cpuPercent(before, cpuSample(pidsOf(b)))
  const p = (q: number): string => (hist.getValueAtPercentile(q) / 1000).toFixed(3)
  console.log(`${b.name} ${SAME ? 'same-node' : 'cross-node'} latency at ${RATE}/s${NODELAY ? ' (bench sockets noDelay)' : ''}: p50 ${p(50)} p90 ${p(90)} p99 ${p(99)} max ${(hist.maxValue / 1000).toFixed(3)} ms, lost ${total - received}`)
  if (warmup > 0) console.log(`  first ${warmup}: p50 ${(warmHist.getValueAtPercentile(50) / 1000).toFixed(3)} p99 ${(warmHist.getValueAtPercentile(99) / 1000).toFixed(3)} max ${(warmHist.maxValue / 1000).toFixed(3)} ms (not in the figures above)`)
  warmHist.destroy()
  if (tap) {
    const tp = (q: number): string => (tapHist.getValueAtPercentile(q) / 1000).toFixed(3)
    console.log(`  bench -> first node -> Redis -> tap: p50 ${tp(50)} p90 ${tp(90)} p99 ${tp(99)} ms (${tapHist.totalCount} batches)`)
    tap.disconnect()
  }
  tapHist.destroy()
  console.log(`  cpu %: ${Object.entries(cpu.perProcess).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}; machine busy ${cpu.machineBusy.toFixed(0)}%`)
  hist.destroy()
  await close(sub, pub)
}

/** Calls `send` `total` times at RATE per second, each with a fresh 64-byte buffer stamped with the send time. */
async function sendPaced (total: number, send: (stamped: Buffer) => void): Promise<void> {
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / RATE - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    const buf = Buffer.alloc(64)
    buf.writeDoubleBE(performance.now(), 0)
    send(buf)
  }
}

async function redisFloor (): Promise<void> {
  const r = await startRedis()
  const pubc = new Redis(r.port, '127.0.0.1', { noDelay: true, enableAutoPipelining: true })
  const subc = new Redis(r.port, '127.0.0.1', { noDelay: true })
  await subc.subscribe('floor')
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  const total = RATE * SECONDS
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  subc.on('messageBuffer', (_c: Buffer, m: Buffer) => {
    hist.recordValue(Math.max(1, Math.round((performance.now() - m.readDoubleBE(0)) * 1000)))
    if (++received >= total) resolveDone()
  })
  await sendPaced(total, (buf) => { void pubc.publish('floor', buf) })
  await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 5000))])
  const p = (q: number): string => (hist.getValueAtPercentile(q) / 1000).toFixed(3)
  console.log(`redis pub/sub hop (same process both ends) at ${RATE}/s: p50 ${p(50)} p90 ${p(90)} p99 ${p(99)} max ${(hist.maxValue / 1000).toFixed(3)} ms`)
  pubc.disconnect()
  subc.disconnect()
  await r.stop()
}

async function nagle (): Promise<void> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  let pending = Buffer.alloc(0)
  const server = createServer((s) => {
    s.on('data', (d: Buffer) => {
      pending = Buffer.concat([pending, d])
      const now = performance.now()
      for (; pending.length >= 80; pending = pending.subarray(80)) hist.recordValue(Math.max(1, Math.round((now - pending.readDoubleBE(0)) * 1000)))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const c = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1')
  await new Promise((resolve) => c.once('connect', resolve))
  c.setNoDelay(NODELAY)
  const total = RATE * SECONDS
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const wait = start + (i * 1000) / RATE - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    const m = Buffer.alloc(80)
    m.writeDoubleBE(performance.now(), 0)
    // As mqtt-packet writes: corked, uncorked on the next tick.
    c.cork(); c.write(m); process.nextTick(() => c.uncork())
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  const p = (q: number): string => (hist.getValueAtPercentile(q) / 1000).toFixed(3)
  console.log(`loopback one-way stream at ${RATE}/s, Nagle ${NODELAY ? 'off' : 'on'}: p50 ${p(50)} p90 ${p(90)} p99 ${p(99)} max ${(hist.maxValue / 1000).toFixed(3)} ms`)
  c.destroy()
  server.close()
  hist.destroy()
}

console.log(`load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`)
if (PROBE === 'redis') await redisFloor()
else if (PROBE === 'nagle') await nagle()
else {
  const b = await BROKERS[BROKER]()
  if (!b) throw new Error(`${BROKER} not available`)
  try {
    if (PROBE === 'qos1') await qos1(b)
    else if (PROBE === 'latency') await latency(b)
    else throw new Error(`unknown PROBE ${PROBE}`)
  } finally { await b.stop() }
}
process.exit(0)
