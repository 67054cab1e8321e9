/**
 * `npm run bench`: thingmesh (standalone, 2-node, 3-node) against one plain
 * Aedes node, the plain Aedes + Redis recipe and Mosquitto, in one run so the
 * ratios mean something on this machine (issue 8). Scenarios, QoS0 64-byte
 * payloads unless said otherwise:
 *
 *   fanin     PUBLISHERS clients (spread over the nodes) flood one wildcard subscriber on the last node, msg/s
 *   fanout    1 publisher on the first node, 100 subscribers spread over the nodes, deliveries/s
 *   qos1      10 publishers x 10 QoS1 in flight to one QoS1 wildcard subscriber, msg/s (PUBACKed and delivered)
 *   latency   RATE msg/s for LATENCY_SECONDS (after LATENCY_WARMUP unrecorded messages), publisher on the first node, subscriber on the last, p50/p99
 *   same      the same with publisher and subscriber on the first node
 *   memory    IDLE raw connections to a fresh first node: resident memory growth per connection (RSS floor
 *             over BENCH_MEMORY_IDLE_SECONDS of idling after, less before; and 1 s after the last CONNACK)
 *   retained  RETAINED retained messages stored, then time for a new `#` subscriber to receive them all
 *
 * Select with BENCH_SCENARIOS / --scenarios=fanin,latency and BENCH_BROKERS /
 * --brokers=standalone,cluster2,cluster3,aedes,aedes-redis2,mosquitto. Every
 * scenario runs RUNS times (interleaved across brokers, so a noisy minute
 * hits all of them) and prints median [min–max] with ratios against the
 * plain Aedes node and Mosquitto. Every loop is bounded by count and time.
 */
import { readFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { cpus, loadavg } from 'node:os'
import hdr from 'hdr-histogram-js'
import { BROKERS, type BrokerUnderTest } from './brokers.ts'
import { num, option } from './options.ts'
import { connect, type MqttClient } from '../helpers/mqtt.ts'
import { qos1Stream } from './qos1-scenario.ts'
import { closeQuietly as close } from './quiet-close.ts'

const ALL_SCENARIOS = ['fanin', 'fanout', 'qos1', 'latency', 'same', 'memory', 'retained'] as const
type Scenario = typeof ALL_SCENARIOS[number]
const SCENARIOS = option('scenarios', 'BENCH_SCENARIOS', ALL_SCENARIOS.join(',')).split(',').filter(Boolean) as Scenario[]
const BROKER_KEYS = option('brokers', 'BENCH_BROKERS', Object.keys(BROKERS).join(',')).split(',').filter(Boolean)
for (const s of SCENARIOS) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${ALL_SCENARIOS.join(', ')}`)
for (const b of BROKER_KEYS) if (!(b in BROKERS)) throw new Error(`unknown broker ${b}; known: ${Object.keys(BROKERS).join(', ')}`)

const RUNS = num('runs', 'BENCH_RUNS', 3)
const MESSAGES = num('messages', 'BENCH_MESSAGES', 100_000)
const PUBLISHERS = num('publishers', 'BENCH_PUBLISHERS', 50)
const FANOUT_SUBSCRIBERS = num('fanout-subscribers', 'BENCH_FANOUT_SUBSCRIBERS', 100)
const FANOUT_MESSAGES = num('fanout-messages', 'BENCH_FANOUT_MESSAGES', 1000)
const QOS1_MESSAGES = num('qos1-messages', 'BENCH_QOS1_MESSAGES', 20_000)
const RATE = num('rate', 'BENCH_RATE', 2000)
const LATENCY_SECONDS = num('latency-seconds', 'BENCH_LATENCY_SECONDS', 5)
/** Messages sent before the measured ones and not recorded: JIT and first-use costs of the path, not its steady state. */
const LATENCY_WARMUP = num('latency-warmup', 'BENCH_LATENCY_WARMUP', 6000, 0)
const IDLE = num('idle', 'BENCH_IDLE_CONNECTIONS', 10_000)
/** Seconds of idling before and after the idle connections open, over which the memory scenario takes the RSS floor. */
const MEMORY_IDLE_SECONDS = num('memory-idle-seconds', 'BENCH_MEMORY_IDLE_SECONDS', 20, 0)
const RETAINED = num('retained', 'BENCH_RETAINED', 10_000)
/** No scenario may run longer than this; a broker that stalls is reported with what it did. */
const SCENARIO_TIMEOUT_MS = num('timeout-ms', 'BENCH_TIMEOUT_MS', 60_000)
const PAYLOAD = Buffer.alloc(64, 'x')

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const deadline = (ms = SCENARIO_TIMEOUT_MS): Promise<'timeout'> => new Promise((resolve) => setTimeout(() => resolve('timeout'), ms).unref())
const spread = (b: BrokerUnderTest, i: number): number => b.ports[i % b.ports.length]
const last = (b: BrokerUnderTest): number => b.ports.at(-1)!

/** Measures; `lost` counts messages that did not arrive before the timeout (QoS0 may drop under overload). */
interface Figure { value: number, lost?: number, crashed?: boolean }

async function fanin (b: BrokerUnderTest): Promise<Figure> {
  const sub = await connect(last(b), { clientId: 'bench-fanin-sub' })
  await sub.subscribeAsync('bench/in/#', { qos: 0 })
  const pubs: MqttClient[] = []
  for (let i = 0; i < PUBLISHERS; i++) pubs.push(await connect(spread(b, i), { clientId: `bench-fanin-pub-${i}` }))
  let received = 0
  let first = 0
  let lastAt = 0
  const done = new Promise<void>((resolve) => {
    sub.on('message', () => {
      if (received === 0) first = performance.now()
      lastAt = performance.now()
      if (++received >= MESSAGES) resolve()
    })
  })
  const perPub = Math.ceil(MESSAGES / PUBLISHERS)
  const sending = Promise.all(pubs.map(async (p, i) => {
    for (let k = 0; k < perPub; k++) {
      p.publish(`bench/in/${i}`, PAYLOAD, { qos: 0 })
      // Yield to the socket every 100 messages so the client does not buffer everything.
      if (k % 100 === 99) await tick()
    }
  }))
  await Promise.race([Promise.all([done, sending]), deadline()])
  await close(sub, ...pubs)
  return { value: received / ((lastAt - first) / 1000), lost: perPub * PUBLISHERS - received }
}

async function fanout (b: BrokerUnderTest): Promise<Figure> {
  const subs: MqttClient[] = []
  for (let i = 0; i < FANOUT_SUBSCRIBERS; i++) {
    const s = await connect(spread(b, i), { clientId: `bench-fanout-sub-${i}` })
    await s.subscribeAsync('bench/out', { qos: 0 })
    subs.push(s)
  }
  const pub = await connect(b.ports[0], { clientId: 'bench-fanout-pub' })
  const expected = FANOUT_SUBSCRIBERS * FANOUT_MESSAGES
  let received = 0
  let lastAt = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  for (const s of subs) s.on('message', () => { lastAt = performance.now(); if (++received >= expected) resolveDone() })
  const start = performance.now()
  for (let k = 0; k < FANOUT_MESSAGES; k++) {
    pub.publish('bench/out', PAYLOAD, { qos: 0 })
    if (k % 10 === 9) await tick()
  }
  await Promise.race([done, deadline()])
  await close(pub, ...subs)
  return { value: received / ((lastAt - start) / 1000), lost: expected - received }
}

async function qos1 (b: BrokerUnderTest): Promise<Figure> {
  const r = await qos1Stream(b, { messages: QOS1_MESSAGES, timeoutMs: SCENARIO_TIMEOUT_MS, clientPrefix: 'bench-q1', payload: PAYLOAD })
  return { value: r.rate, lost: r.timedOut ? QOS1_MESSAGES - r.received : 0 }
}

/**
 * MQTT.js leaves Nagle's algorithm on. A QoS 0 stream gets no data back to
 * carry TCP's ACKs, so the receiver delays them (40 ms on Linux) and Nagle
 * holds the publisher's next small write until then: on loopback at 2,000
 * msg/s that alone made p99 2.8-37 ms (0.25-1.1 ms with TCP_NODELAY, same
 * run). A latency-sensitive client turns it off; the brokers keep their own
 * socket settings.
 */
function noDelay (c: MqttClient): MqttClient {
  (c.stream as unknown as { setNoDelay?(v: boolean): void }).setNoDelay?.(true)
  return c
}

/**
 * Latency from the moment the publisher hands the message to its client (the
 * timestamp in the payload is taken then, not at the scheduled time) to the
 * subscriber's 'message' event. Timers fire at millisecond granularity, so at
 * 2,000 msg/s the messages due within the next millisecond leave together.
 * The first LATENCY_WARMUP messages (3 s at 2,000/s) are sent at the same
 * rate but not recorded: on a 2-node cluster under load their p50 was
 * 11-14 ms (the path's first runs), and 500 of them were 5% of the samples,
 * so p99 measured them. 1,000 were not enough on a freshly started cluster
 * (a latency-only run, where no other scenario ran first): per 500 ms of a
 * 2,000/s stream right after start, p50 stayed at 3-400 ms for 1-1.5 s and
 * came down to its level after 2-4 s (every message over the link; the
 * nodes' CPU profiles show the path running about twice the CPU per message
 * before V8 optimised it, which queues on a shared 2-core machine). Fresh
 * standalone and plain Aedes nodes showed it too (first run's p50 1.2-1.4x
 * the next ones), Mosquitto not.
 */
async function latency (b: BrokerUnderTest, pubPort: number, subPort: number): Promise<{ p50: Figure, p99: Figure }> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  const sub = noDelay(await connect(subPort, { clientId: 'bench-lat-sub' }))
  await sub.subscribeAsync('bench/lat', { qos: 0 })
  const pub = noDelay(await connect(pubPort, { clientId: 'bench-lat-pub' }))
  const total = RATE * LATENCY_SECONDS
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  sub.on('message', (_t, payload) => {
    // Bytes 8-11: the message's number; warm-up messages are not recorded.
    if (payload.readUInt32BE(8) < LATENCY_WARMUP) return
    hist.recordValue(Math.max(1, Math.round((performance.now() - payload.readDoubleBE(0)) * 1000)))
    if (++received >= total) resolveDone()
  })
  const start = performance.now()
  for (let i = 0; i < LATENCY_WARMUP + total; i++) {
    const wait = start + (i * 1000) / RATE - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    const buf = Buffer.alloc(64)
    buf.writeDoubleBE(performance.now(), 0)
    buf.writeUInt32BE(i, 8)
    pub.publish('bench/lat', buf, { qos: 0 })
  }
  await Promise.race([done, deadline(5000)])
  await close(sub, pub)
  const r = { p50: { value: hist.getValueAtPercentile(50) / 1000, lost: total - received }, p99: { value: hist.getValueAtPercentile(99) / 1000 } }
  hist.destroy()
  return r
}

function rssKb (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1])
}

/** CONNECT, MQTT 3.1.1, clean session, keepalive 120 s, the given client id. */
function connectPacket (clientId: string): Buffer {
  const id = Buffer.from(clientId)
  const body = Buffer.concat([Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 120, id.length >> 8, id.length & 0xff]), id])
  return Buffer.concat([Buffer.from([0x10, body.length]), body])
}

/**
 * RSS once a freshly started broker stopped growing on its own (start-up
 * compilation, first heap growth, a cluster node's first heartbeats): less
 * than 256 KB of change over 500 ms, at most 5 s. Taken right at start, that
 * settling was counted as connection memory (about 1 KB per connection for
 * 10,000 on a cluster node).
 */
async function settledRssKb (pid: number): Promise<number> {
  let last = rssKb(pid)
  const until = Date.now() + 5000
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    const now = rssKb(pid)
    if (Math.abs(now - last) < 256) return now
    last = now
  }
  return last
}

/**
 * The lowest RSS over `seconds` of idling, read every 500 ms: what the broker
 * holds once its garbage collector has caught up. A Node broker's RSS right
 * after a burst of work holds young-generation space grown by that burst and
 * old-space pages not yet given back; V8's memory reducer gives them back
 * some 10-15 s into an idle period. A single reading, at start or 1 s after
 * the last CONNACK, caught either side of that at random: a 2-node cluster
 * node's figure went 6.1-7.5 KB between runs of one build (session 6), and
 * its idle RSS drifts by about 1 MB/s between collections (heartbeats,
 * metrics). Mosquitto's RSS does not move while idle.
 */
async function idleFloorRssKb (pid: number, seconds: number): Promise<number> {
  let floor = rssKb(pid)
  const until = Date.now() + seconds * 1000
  while (Date.now() < until) {
    await new Promise((resolve) => setTimeout(resolve, 500))
    floor = Math.min(floor, rssKb(pid))
  }
  return floor
}

/**
 * Idle connections are raw sockets: an MQTT.js client each would exhaust the
 * bench process first. Two figures, the same method for every broker:
 * `memory`, the RSS floor over MEMORY_IDLE_SECONDS of idling after the
 * connections opened, less the fresh broker's floor over as long before
 * (idleFloorRssKb), and `memory.1s`, the RSS 1 s after the last CONNACK less
 * the settled RSS right before the first connection (the method of the
 * tables before session 7).
 */
async function memory (b: BrokerUnderTest): Promise<{ idle: Figure, at1s: Figure }> {
  const pid = b.pids[0]
  await settledRssKb(pid)
  const floorBefore = await idleFloorRssKb(pid, MEMORY_IDLE_SECONDS)
  const before = rssKb(pid)
  const sockets: Socket[] = []
  let failed = 0
  const open = (i: number): Promise<void> => new Promise((resolve) => {
    const s = tcpConnect(b.ports[0], '127.0.0.1')
    sockets.push(s)
    const fail = (): void => { failed++; resolve() }
    s.once('error', fail)
    s.once('close', fail)
    s.once('connect', () => s.write(connectPacket(`bench-idle-${i}`)))
    // CONNACK is 4 bytes: 0x20 0x02 flags rc; rc 0 means accepted.
    s.once('data', (d) => { s.removeListener('close', fail); if (d[0] === 0x20 && d[3] === 0) resolve(); else fail() })
  })
  const stopAt = Date.now() + SCENARIO_TIMEOUT_MS
  for (let i = 0; i < IDLE && Date.now() < stopAt; i += 200) {
    await Promise.all(Array.from({ length: Math.min(200, IDLE - i) }, (_, k) => open(i + k)))
  }
  // Let the broker finish per-connection work it defers past CONNACK (session bookkeeping, timers).
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const after = rssKb(pid)
  const floorAfter = await idleFloorRssKb(pid, MEMORY_IDLE_SECONDS)
  const ok = sockets.length - failed
  for (const s of sockets) s.destroy()
  const lost = IDLE - ok
  return { idle: { value: (floorAfter - floorBefore) / Math.max(1, ok), lost }, at1s: { value: (after - before) / Math.max(1, ok), lost } }
}

async function retained (b: BrokerUnderTest): Promise<Figure> {
  const pub = await connect(b.ports[0], { clientId: 'bench-ret-pub' })
  // QoS1 so every retained message is stored before the subscriber arrives.
  const stopAt = Date.now() + SCENARIO_TIMEOUT_MS
  for (let i = 0; i < RETAINED && Date.now() < stopAt; i += 100) {
    const window = Promise.all(Array.from({ length: Math.min(100, RETAINED - i) }, (_, k) => pub.publishAsync(`bench/ret/${i + k}`, PAYLOAD, { qos: 1, retain: true })))
    if (await Promise.race([window, deadline(stopAt - Date.now())]) === 'timeout') throw new Error('retained messages not acknowledged in time')
  }
  await close(pub)
  const sub = await connect(last(b), { clientId: 'bench-ret-sub' })
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  sub.on('message', (topic) => { if (topic.startsWith('bench/ret/') && ++received >= RETAINED) resolveDone() })
  const start = performance.now()
  sub.subscribe('#', { qos: 0 })
  await Promise.race([done, deadline()])
  const elapsed = (performance.now() - start) / 1000
  await close(sub)
  return { value: elapsed, lost: RETAINED - received }
}

// ---- running and reporting ---------------------------------------------------

interface Metric { key: string, title: string, unit: string, higherIsBetter: boolean, digits: number }
const METRICS: Record<string, Metric> = {
  fanin: { key: 'fanin', title: `fan-in: ${PUBLISHERS} publishers -> 1 wildcard subscriber, ${MESSAGES} msgs`, unit: 'msg/s', higherIsBetter: true, digits: 0 },
  fanout: { key: 'fanout', title: `fan-out: 1 publisher -> ${FANOUT_SUBSCRIBERS} subscribers, ${FANOUT_MESSAGES} msgs`, unit: 'deliveries/s', higherIsBetter: true, digits: 0 },
  qos1: { key: 'qos1', title: `QoS1: 10 publishers x 10 in flight -> 1 subscriber, ${QOS1_MESSAGES} msgs`, unit: 'msg/s', higherIsBetter: true, digits: 0 },
  'latency.p50': { key: 'latency.p50', title: `cross-node latency p50 at ${RATE} msg/s (publisher first node, subscriber last)`, unit: 'ms', higherIsBetter: false, digits: 3 },
  'latency.p99': { key: 'latency.p99', title: `cross-node latency p99 at ${RATE} msg/s`, unit: 'ms', higherIsBetter: false, digits: 3 },
  'same.p50': { key: 'same.p50', title: `same-node latency p50 at ${RATE} msg/s`, unit: 'ms', higherIsBetter: false, digits: 3 },
  'same.p99': { key: 'same.p99', title: `same-node latency p99 at ${RATE} msg/s`, unit: 'ms', higherIsBetter: false, digits: 3 },
  memory: { key: 'memory', title: `memory per idle connection (${IDLE} connections, fresh node, RSS floor over ${MEMORY_IDLE_SECONDS} s idle after - before, / N)`, unit: 'KB', higherIsBetter: false, digits: 2 },
  'memory.1s': { key: 'memory.1s', title: `memory per idle connection (${IDLE} connections, fresh node, RSS 1 s after the last CONNACK - before, / N)`, unit: 'KB', higherIsBetter: false, digits: 2 },
  retained: { key: 'retained', title: `retained: new '#' subscriber receives ${RETAINED} retained messages`, unit: 's', higherIsBetter: false, digits: 3 },
}

/** results[metric][broker] = one figure per run */
const results = new Map<string, Map<string, Figure[]>>()
function record (metric: string, broker: string, f: Figure): void {
  if (!results.has(metric)) results.set(metric, new Map())
  const m = results.get(metric)!
  if (!m.has(broker)) m.set(broker, [])
  m.get(broker)!.push(f)
}

function alive (pid: number): boolean {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function withBroker (key: string, fn: (b: BrokerUnderTest) => Promise<void>): Promise<boolean> {
  const b = await BROKERS[key]()
  if (!b) return false
  try { await fn(b) } finally { await b.stop() }
  return true
}

/** Connection resets seen by the bench's own clients (reported, not fatal: a broker may close a slow client). */
let resets = 0
process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') { resets++; return }
  console.error(err)
  process.exit(1)
})

const names = new Map<string, string>()
const missing = new Set<string>()
const load0 = loadavg()
const started = Date.now()

for (let run = 0; run < RUNS; run++) {
  for (const key of BROKER_KEYS) {
    if (missing.has(key)) continue
    const shared = SCENARIOS.filter((s) => s !== 'memory' && s !== 'retained')
    const steps: Array<[Scenario[], boolean]> = [[shared, false], [SCENARIOS.includes('memory') ? ['memory'] : [], true], [SCENARIOS.includes('retained') ? ['retained'] : [], true]]
    for (const [scenarios] of steps) {
      if (scenarios.length === 0) continue
      // memory and retained each get a fresh broker: memory must start from an idle node, retained leaves 10,000 messages behind.
      const ran = await withBroker(key, async (b) => {
        names.set(key, b.name)
        for (const s of scenarios) {
          process.stderr.write(`run ${run + 1}/${RUNS} ${b.name}: ${s}\n`)
          const metrics = s === 'latency' || s === 'same' ? [`${s}.p50`, `${s}.p99`] : s === 'memory' ? ['memory', 'memory.1s'] : [s]
          if (!b.pids.every(alive)) { for (const m of metrics) record(m, key, { value: NaN, crashed: true }); continue }
          try {
            if (s === 'fanin') record('fanin', key, await fanin(b))
            else if (s === 'fanout') record('fanout', key, await fanout(b))
            else if (s === 'qos1') record('qos1', key, await qos1(b))
            else if (s === 'latency' || s === 'same') {
              const r = await latency(b, b.ports[0], s === 'latency' ? last(b) : b.ports[0])
              record(`${s}.p50`, key, r.p50)
              record(`${s}.p99`, key, r.p99)
            } else if (s === 'memory') {
              const m = await memory(b)
              record('memory', key, m.idle)
              record('memory.1s', key, m.at1s)
            }
            else record('retained', key, await retained(b))
            // A broker that died during the scenario did not finish it, whatever the clients counted.
            if (!b.pids.every(alive)) {
              process.stderr.write(`  a broker process died during ${s}\n${b.logTail?.() ?? ''}\n`)
              for (const m of metrics) results.get(m)!.get(key)!.splice(-1, 1, { value: NaN, crashed: true })
            }
          } catch (err) {
            process.stderr.write(`  failed: ${(err as Error).message}\n${b.logTail?.() ?? ''}\n`)
            for (const m of metrics) record(m, key, { value: NaN, crashed: true })
          }
        }
      })
      if (!ran) { missing.add(key); break }
    }
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const ratio = (m: Metric, x: number, base: number | undefined): string => {
  if (base === undefined || !Number.isFinite(base) || base === 0) return '—'
  // Ratios read "how good relative to the baseline": above 1 is better, for every metric.
  return `${(m.higherIsBetter ? x / base : base / x).toFixed(2)}x`
}

console.log(`\nthingmesh bench — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores, ${RUNS} runs each, median [min–max]`)
console.log(`load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}; took ${Math.round((Date.now() - started) / 1000)} s`)
console.log('ratios: above 1x is better than the baseline (throughput / baseline, or baseline latency / latency)')
if (resets > 0) console.log(`connection resets seen by bench clients: ${resets}`)
if (missing.size > 0) console.log(`not measured (not installed): ${[...missing].join(', ')}`)
for (const [metricKey, byBroker] of results) {
  const m = METRICS[metricKey]
  const med = (k: string): number | undefined => {
    const vals = (byBroker.get(k) ?? []).filter((f) => !f.crashed).map((f) => f.value)
    return vals.length > 0 ? median(vals) : undefined
  }
  console.log(`\n${m.title}\n`)
  console.log(`| broker | ${m.unit} | vs aedes | vs mosquitto | lost |`)
  console.log('|---|---|---|---|---|')
  for (const [k, figs] of byBroker) {
    const vals = figs.filter((f) => !f.crashed).map((f) => f.value)
    const crashed = figs.length - vals.length
    const lost = figs.reduce((sum, f) => sum + (f.lost ?? 0), 0) + (crashed > 0 ? ` (broker failed in ${crashed} of ${figs.length} runs)` : '')
    if (vals.length === 0) { console.log(`| ${names.get(k)} | failed | — | — | ${lost} |`); continue }
    const x = median(vals)
    console.log(`| ${names.get(k)} | ${x.toFixed(m.digits)} [${Math.min(...vals).toFixed(m.digits)}–${Math.max(...vals).toFixed(m.digits)}] | ${ratio(m, x, med('aedes'))} | ${ratio(m, x, med('mosquitto'))} | ${lost} |`)
  }
}
process.exit(0)
