import t from 'tap'
import { connect as tcpConnect } from 'node:net'
import { startNodeProcess } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { makeFuzzer } from '../helpers/fuzz.ts'

// [S10] Bounded packet-level mutation fuzzer (test/helpers/fuzz.ts) against a
// live node: valid MQTT packets mutated (bit flips, byte swaps, truncation,
// wrong lengths and flags, splices), for FUZZ_MS (default 20 s). The node must never crash,
// its memory must stay bounded, and another client keeps round-tripping.
const FUZZ_MS = Number(process.env.FUZZ_MS ?? 20_000)
const WORKERS = 8
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
t.comment(`fuzz seed ${seed} (FUZZ_SEED=${seed} reproduces the inputs), ${FUZZ_MS} ms`)

const fuzzer = makeFuzzer(seed)

/** One attacker session: (maybe mutated) CONNECT, a few mutated packets, then a PINGREQ; ends on close, PINGRESP or 250 ms (a truncated packet leaves the node waiting for bytes). */
function session (port: number, n: number): Promise<void> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1')
    const timer = setTimeout(() => s.destroy(), 250)
    const end = (): void => { clearTimeout(timer); s.destroy(); resolve() }
    s.on('error', () => {})
    s.on('close', end)
    s.on('data', (d) => { if (d.includes(0xd0)) end() }) // PINGRESP type byte: the node kept reading
    s.on('connect', () => {
      s.write(fuzzer.session(`fz-${n}`))
    })
  })
}

const node = await startNodeProcess({ args: ['--max-packet-size', '65536', '--publish-rate-per-client', '0', '--connect-rate-per-ip', '0'] })
t.teardown(() => node.kill())

const rss = async (): Promise<number> => Number(/resident_memory_bytes (\d+)/.exec(await node.metrics())?.[1] ?? 0)

t.test(`mutation fuzz for ${FUZZ_MS} ms: no crash, bounded memory, others unaffected`, async (t) => {
  const watch = await connect(node.port, { clientId: 'fuzz-watchdog' })
  await watch.subscribeAsync('watchdog/echo', { qos: 1 })
  const rssBefore = await rss()
  const deadline = Date.now() + FUZZ_MS
  let sessions = 0
  const latencies: number[] = []
  const watchdog = (async () => {
    while (Date.now() < deadline) {
      const t0 = Date.now()
      const echoed = new Promise<void>((resolve) => watch.once('message', () => resolve()))
      await watch.publishAsync('watchdog/echo', String(t0), { qos: 1 })
      await echoed
      latencies.push(Date.now() - t0)
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  })()
  await Promise.all(Array.from({ length: WORKERS }, async (_v, w) => {
    while (Date.now() < deadline) await session(node.port, w * 1_000_000 + sessions++)
  }))
  await watchdog
  const rssAfter = await rss()
  latencies.sort((a, b) => a - b)
  const p99 = latencies[Math.floor(latencies.length * 0.99)] ?? 0
  t.comment(`${sessions} attacker sessions, ${latencies.length} watchdog round trips, p99 ${p99} ms, RSS ${(rssBefore / 1e6).toFixed(0)} -> ${(rssAfter / 1e6).toFixed(0)} MB`)
  t.equal(node.proc.exitCode, null, 'node alive')
  t.equal((await node.health()).status, 200, 'node healthy')
  t.ok(sessions > 100, 'the fuzzer ran')
  t.ok(latencies.length > 10, 'the watchdog client kept working')
  t.ok(rssAfter - rssBefore < 150e6, 'RSS growth under 150 MB')
  await close(watch)
})
