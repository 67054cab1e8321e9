/**
 * `npm run bench:cluster`: QoS0 throughput and cross-node latency for a
 * standalone node, a 2-node cluster and (when installed) Mosquitto, measured
 * in one run so the ratios mean something on this machine. Prints a table;
 * every loop is bounded by count and time.
 */
import hdr from 'hdr-histogram-js'
import { cluster, mosquitto, standalone, type BrokerUnderTest } from './brokers.ts'
import { close, connect, type MqttClient } from '../helpers/mqtt.ts'

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 100_000)
const PUBLISHERS = Number(process.env.BENCH_PUBLISHERS ?? 10)
const RATE = Number(process.env.BENCH_RATE ?? 2000)
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 5)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const PAYLOAD = Buffer.alloc(64, 'x')

interface Result { throughput: number, p50: number, p99: number }

/** Fan-in: PUBLISHERS clients on ports[0] flood QoS0; one wildcard subscriber on the last port counts. */
async function throughput (b: BrokerUnderTest): Promise<number> {
  const sub = await connect(b.ports.at(-1)!, { clientId: 'bench-sub' })
  await sub.subscribeAsync('bench/tp/#', { qos: 0 })
  const pubs: MqttClient[] = []
  for (let i = 0; i < PUBLISHERS; i++) pubs.push(await connect(b.ports[i % Math.max(1, b.ports.length - 1)] , { clientId: `bench-pub-${i}` }))
  let received = 0
  let first = 0
  let last = 0
  const done = new Promise<void>((resolve) => {
    sub.on('message', () => {
      if (received === 0) first = performance.now()
      received++
      last = performance.now()
      if (received >= MESSAGES) resolve()
    })
  })
  const perPub = Math.ceil(MESSAGES / PUBLISHERS)
  await Promise.all(pubs.map(async (p, i) => {
    for (let k = 0; k < perPub; k++) {
      p.publish(`bench/tp/${i}`, PAYLOAD, { qos: 0 })
      // Yield to the socket every 100 messages so the client does not buffer everything.
      if (k % 100 === 99) await new Promise((r) => setImmediate(r))
    }
  }))
  const timeout = new Promise<void>((resolve) => setTimeout(resolve, 30_000))
  await Promise.race([done, timeout])
  await close(sub, ...pubs)
  return received / ((last - first) / 1000)
}

/** Cross-node latency at a fixed rate: publisher on ports[0], subscriber on the last port. */
async function latency (b: BrokerUnderTest): Promise<{ p50: number, p99: number }> {
  const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  const sub = await connect(b.ports.at(-1)!, { clientId: 'lat-sub' })
  await sub.subscribeAsync('bench/lat', { qos: 0 })
  const pub = await connect(b.ports[0], { clientId: 'lat-pub' })
  sub.on('message', (_t, payload) => {
    const sent = payload.readDoubleBE(0)
    hist.recordValue(Math.max(1, Math.round((performance.now() - sent) * 1000)))
  })
  const total = RATE * LATENCY_SECONDS
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    const buf = Buffer.alloc(64)
    buf.writeDoubleBE(performance.now(), 0)
    pub.publish('bench/lat', buf, { qos: 0 })
  }
  await new Promise((r) => setTimeout(r, 500))
  await close(sub, pub)
  const r = { p50: hist.getValueAtPercentile(50) / 1000, p99: hist.getValueAtPercentile(99) / 1000 }
  hist.destroy()
  return r
}

async function measure (make: () => Promise<BrokerUnderTest | null>): Promise<{ name: string, runs: Result[] } | null> {
  const runs: Result[] = []
  let name = ''
  for (let i = 0; i < RUNS; i++) {
    const b = await make()
    if (!b) return null
    name = b.name
    try {
      const tp = await throughput(b)
      const lat = await latency(b)
      runs.push({ throughput: tp, ...lat })
    } finally { await b.stop() }
  }
  return { name, runs }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
const fmt = (x: number, d = 0): string => x.toFixed(d)

const results = (await Promise.resolve().then(async () => [
  await measure(standalone),
  await measure(() => cluster(2)),
  await measure(mosquitto),
])).filter((r): r is { name: string, runs: Result[] } => r !== null)

const base = results[0]
const baseTp = median(base.runs.map((r) => r.throughput))
const baseP50 = median(base.runs.map((r) => r.p50))
console.log(`\nthingmesh bench:cluster — ${new Date().toISOString().slice(0, 10)}, ${(await import('node:os')).cpus().length} cores, ${RUNS} runs each (median [min–max])`)
console.log(`QoS0 64 B: fan-in ${PUBLISHERS} publishers -> 1 wildcard subscriber (${MESSAGES} msgs); latency at ${RATE} msg/s for ${LATENCY_SECONDS} s, publisher and subscriber on different nodes\n`)
console.log('| broker | fan-in msg/s | vs standalone | p50 ms | p99 ms | p50 vs standalone |')
console.log('|---|---|---|---|---|---|')
for (const r of results) {
  const tps = r.runs.map((x) => x.throughput)
  const p50s = r.runs.map((x) => x.p50)
  const p99s = r.runs.map((x) => x.p99)
  console.log(`| ${r.name} | ${fmt(median(tps))} [${fmt(Math.min(...tps))}–${fmt(Math.max(...tps))}] | ${fmt(median(tps) / baseTp, 2)}x | ${fmt(median(p50s), 3)} | ${fmt(median(p99s), 3)} [${fmt(Math.min(...p99s), 2)}–${fmt(Math.max(...p99s), 2)}] | ${fmt(median(p50s) / baseP50, 2)}x |`)
}
process.exit(0)
