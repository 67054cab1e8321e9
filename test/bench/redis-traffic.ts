/**
 * `npm run bench:traffic`: Redis traffic per published message (issue 8):
 * "grows with the number of nodes that have a matching subscriber, not with
 * the number of nodes".
 *
 * Clusters of 2, 3 and 4 nodes (a fresh one each). One publisher on node 1
 * sends MESSAGES 64-byte messages to `traffic/x` at RATE msg/s, first QoS0,
 * then QoS1 (10 in flight); subscribers of `traffic/#` (at the same QoS) sit
 * on k other nodes. Table 1: k = 1 in every cluster size. Table 2: the
 * 4-node cluster with k = 0 (the subscriber on the publisher's own node), 1,
 * 2 and 3.
 *
 * Per message: Redis commands (INFO commandstats calls) and bytes (INFO stats
 * total_net_input_bytes and total_net_output_bytes), as deltas over the
 * publishing interval minus the deltas over a quiet interval of the same
 * length right after it (same clients connected, nothing published), so
 * heartbeats, lease renewals, replay-log trims and the INFO calls themselves
 * are not charged to the messages.
 *
 * QoS0 forwards take the direct node-to-node links (--cluster-links, on by
 * default) and cost Redis nothing: 0.00 commands and bytes per message for
 * every k (2-node, load 7.5: QoS0 k = 1 was one PUBLISH per flushed batch
 * before; QoS1 unchanged at 2.07 commands, 217 B in, 170 B out per message).
 * THINGMESH_CLUSTER_LINKS=false (inherited by the nodes) measures the Redis
 * pub/sub path instead.
 *
 * Options (flag or environment): --messages TRAFFIC_MESSAGES (5000), --rate
 * TRAFFIC_RATE (1000 msg/s; 0 = as fast as the publisher goes), --sizes
 * TRAFFIC_SIZES (2,3,4).
 */
import { cpus, loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { cluster, type BrokerUnderTest } from './brokers.ts'
import { num, option } from './options.ts'
import { close, connect, type MqttClient } from '../helpers/mqtt.ts'


const MESSAGES = num('messages', 'TRAFFIC_MESSAGES', 5000)
const RATE = num('rate', 'TRAFFIC_RATE', 1000, 0)
const SIZES = option('sizes', 'TRAFFIC_SIZES', '2,3,4').split(',').map(Number)
for (const s of SIZES) if (!Number.isInteger(s) || s < 2) throw new Error('--sizes: cluster sizes of 2 nodes or more')
const IN_FLIGHT = 10
/** No phase (publishing, delivery) may take longer than this. */
const PHASE_TIMEOUT_MS = Math.max(60_000, RATE > 0 ? (MESSAGES / RATE) * 3000 : 0)
const PAYLOAD = Buffer.alloc(64, 'x')
const TOPIC = 'traffic/x'

// ---- Redis counters ------------------------------------------------------------

interface Counters { calls: Map<string, number>, netIn: number, netOut: number }

/** One INFO call for both sections, so each snapshot costs the same and cancels out against the quiet interval. */
async function snapshot (r: Redis): Promise<Counters> {
  const info = await r.info('stats', 'commandstats')
  const calls = new Map<string, number>()
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1], Number(m[2]))
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)![1])
  return { calls, netIn: field('total_net_input_bytes'), netOut: field('total_net_output_bytes') }
}

function delta (a: Counters, b: Counters): Counters {
  const calls = new Map<string, number>()
  for (const [k, v] of b.calls) calls.set(k, v - (a.calls.get(k) ?? 0))
  return { calls, netIn: b.netIn - a.netIn, netOut: b.netOut - a.netOut }
}

/** Publishing interval minus quiet interval, per message. */
function perMessage (pub: Counters, quiet: Counters, n: number): Counters {
  const calls = new Map<string, number>()
  for (const k of new Set([...pub.calls.keys(), ...quiet.calls.keys()])) calls.set(k, ((pub.calls.get(k) ?? 0) - (quiet.calls.get(k) ?? 0)) / n)
  return { calls, netIn: (pub.netIn - quiet.netIn) / n, netOut: (pub.netOut - quiet.netOut) / n }
}

// ---- one measurement -------------------------------------------------------------

interface Measurement { nodes: number, k: number, qos: 0 | 1, sent: number, delivered: number, seconds: number, per: Counters, quiet: Counters }

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Subscribes `traffic/#` on the given nodes and waits until a publish from
 * node 1 reaches every one of them (their interest is known to node 1).
 */
async function subscribers (b: BrokerUnderTest, nodeIdx: number[], qos: 0 | 1, pub: MqttClient): Promise<MqttClient[]> {
  const subs: MqttClient[] = []
  for (const i of nodeIdx) {
    const s = await connect(b.ports[i], { clientId: `traffic-sub-${i}-q${qos}` })
    await s.subscribeAsync('traffic/#', { qos })
    subs.push(s)
  }
  const waiting = new Set(subs)
  const onProbe = (s: MqttClient) => (topic: string): void => { if (topic === 'traffic/probe') waiting.delete(s) }
  const handlers = subs.map((s) => { const h = onProbe(s); s.on('message', h); return [s, h] as const })
  const stopAt = Date.now() + 60_000
  while (waiting.size > 0) {
    if (Date.now() > stopAt) throw new Error('subscribers not routed from node 1 within 60 s')
    pub.publish('traffic/probe', 'probe', { qos: 0 })
    await sleep(100)
  }
  for (const [s, h] of handlers) s.off('message', h)
  return subs
}

async function measure (b: BrokerUnderTest, redis: Redis, k: number, qos: 0 | 1): Promise<Measurement> {
  const pub = await connect(b.ports[0], { clientId: `traffic-pub-q${qos}` })
  // k = 0: one subscriber on the publisher's own node, so the messages still go somewhere.
  const subNodes = k === 0 ? [0] : Array.from({ length: k }, (_, i) => i + 1)
  const subs = await subscribers(b, subNodes, qos, pub)
  try {
    let delivered = 0
    const expected = MESSAGES * subs.length
    let allIn = (): void => {}
    const done = new Promise<void>((resolve) => { allIn = resolve })
    for (const s of subs) s.on('message', (topic) => { if (topic === TOPIC && ++delivered >= expected) allIn() })
    // Let the probes' own traffic settle before the counters start.
    await sleep(200)

    const a = await snapshot(redis)
    const t0 = performance.now()
    const stopAt = t0 + PHASE_TIMEOUT_MS
    let sent = 0
    const inFlight = new Set<Promise<unknown>>()
    for (let i = 0; i < MESSAGES && performance.now() < stopAt; i++) {
      if (RATE > 0) {
        const wait = t0 + (i * 1000) / RATE - performance.now()
        if (wait > 1) await sleep(wait)
      }
      if (qos === 0) {
        pub.publish(TOPIC, PAYLOAD, { qos: 0 })
        if (RATE === 0 && i % 100 === 99) await new Promise((resolve) => setImmediate(resolve))
      } else {
        if (inFlight.size >= IN_FLIGHT) await Promise.race([Promise.race(inFlight), sleep(Math.max(0, stopAt - performance.now()))])
        const p: Promise<unknown> = pub.publishAsync(TOPIC, PAYLOAD, { qos: 1 }).catch(() => {}).finally(() => inFlight.delete(p))
        inFlight.add(p)
      }
      sent++
    }
    await Promise.race([Promise.all([done, ...inFlight]), sleep(Math.max(5000, stopAt - performance.now()))])
    const ms = performance.now() - t0
    const b1 = await snapshot(redis)

    // The quiet interval: as long as the publishing one, same clients connected, nothing published.
    const q0 = await snapshot(redis)
    await sleep(ms)
    const q1 = await snapshot(redis)
    const pubDelta = delta(a, b1)
    const quiet = delta(q0, q1)
    return { nodes: b.ports.length, k, qos, sent, delivered, seconds: ms / 1000, per: perMessage(pubDelta, quiet, sent), quiet }
  } finally {
    await close(pub, ...subs)
  }
}

// ---- run ---------------------------------------------------------------------------

const load0 = loadavg()
const results: Measurement[] = []
for (const size of SIZES) {
  const b = await cluster(size)
  const redis = new Redis(b.redisPort!, '127.0.0.1')
  try {
    // The largest cluster also gives the k table; the others only k = 1.
    const ks = size === Math.max(...SIZES) ? Array.from({ length: size }, (_, k) => k) : [1]
    for (const k of ks) {
      for (const qos of [0, 1] as const) {
        process.stderr.write(`${size} nodes, subscribers on ${k} other node(s), QoS${qos}\n`)
        results.push(await measure(b, redis, k, qos))
      }
    }
  } finally {
    redis.disconnect()
    await b.stop()
  }
}

/** The largest entries of a per-message (or per-second) command count, e.g. "publish 1.00, evalsha 0.50". */
function topCommands (calls: Map<string, number>, n: number, digits: number): string {
  return [...calls].filter(([cmd, v]) => cmd !== 'info' && v >= 0.5 * 10 ** -digits).sort((x, y) => y[1] - x[1]).slice(0, n).map(([cmd, v]) => `${cmd} ${v.toFixed(digits)}`).join(', ') || '—'
}
const perSecond = (c: Counters, s: number): Map<string, number> => new Map([...c.calls].map(([k, v]) => [k, v / s]))
/** Subtraction leaves noise around zero; a figure that rounds to zero is shown as 0, not -0. */
const fix = (x: number, digits: number): string => Math.abs(x) < 0.5 * 10 ** -digits ? (0).toFixed(digits) : x.toFixed(digits)
const total = (c: Counters): number => [...c.calls].reduce((s, [cmd, v]) => s + (cmd === 'info' ? 0 : v), 0)
const row = (m: Measurement, first: string): string =>
  `| ${first} | QoS${m.qos} | ${m.delivered}/${m.sent * Math.max(1, m.k)} | ${fix(total(m.per), 2)} | ${fix(m.per.netIn, 0)} | ${fix(m.per.netOut, 0)} | ${topCommands(m.per.calls, 4, 2)} | ${(total(m.quiet) / m.seconds).toFixed(0)} cmd/s (${topCommands(perSecond(m.quiet, m.seconds), 3, 0)}), ${((m.quiet.netIn + m.quiet.netOut) / m.seconds / 1024).toFixed(1)} KiB/s |`
const header = (first: string): void => {
  console.log(`| ${first} | QoS | delivered | commands / msg | bytes into Redis / msg | bytes out of Redis / msg | main commands / msg | quiet background (subtracted) |`)
  console.log('|---|---|---|---|---|---|---|---|')
}

console.log(`\nthingmesh bench:traffic — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores, load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}, at end ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
console.log(`${MESSAGES} messages of 64 B to ${TOPIC} from one publisher on node 1 at ${RATE > 0 ? `${RATE} msg/s` : 'full speed'} (QoS1: ${IN_FLIGHT} in flight); subscribers of traffic/# at the same QoS.`)
console.log('Per message = (Redis INFO deltas while publishing − deltas over a quiet interval of the same length right after, same clients connected, nothing published) / messages sent.')
console.log('Commands are INFO commandstats calls, which count the commands a Lua script runs as well as the EVALSHA (so they are not round trips); bytes out include pub/sub pushes to the nodes; INFO itself is excluded.\n')
console.log('Subscriber on exactly 1 other node:\n')
header('nodes')
for (const m of results.filter((r) => r.k === 1)) console.log(row(m, String(m.nodes)))
const biggest = Math.max(...SIZES)
console.log(`\n${biggest}-node cluster, subscribers on k other nodes (k = 0: on the publisher's node only):\n`)
header('k')
for (const m of results.filter((r) => r.nodes === biggest)) console.log(row(m, String(m.k)))
process.exit(0)
