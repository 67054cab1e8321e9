import t from 'tap'
import { connect as tcpConnect } from 'node:net'
import { createRequire } from 'node:module'
import { startNodeProcess } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'

// [S10] Bounded packet-level mutation fuzzer against a live node: valid MQTT
// packets mutated (bit flips, byte swaps, truncation, wrong lengths and
// flags, splices), for FUZZ_MS (default 20 s). The node must never crash,
// its memory must stay bounded, and another client keeps round-tripping.
const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }
const FUZZ_MS = Number(process.env.FUZZ_MS ?? 20_000)
const WORKERS = 8
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000)
t.comment(`fuzz seed ${seed} (FUZZ_SEED=${seed} reproduces the inputs), ${FUZZ_MS} ms`)

let state = seed >>> 0 || 1
const rnd = (): number => { state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0; return state / 0x100000000 }
const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]
const int = (n: number): number => Math.floor(rnd() * n)

const corpus: Buffer[] = [
  { cmd: 'publish', topic: 'fuzz/a', payload: Buffer.from('hello'), qos: 0 },
  { cmd: 'publish', topic: 'fuzz/b/c', payload: Buffer.alloc(300, 1), qos: 1, messageId: 7, retain: true },
  { cmd: 'publish', topic: 'fuzz/q2', payload: Buffer.from('x'), qos: 2, messageId: 9 },
  { cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'fuzz/#', qos: 1 }, { topic: '+/x', qos: 2 }] },
  { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['fuzz/#'] },
  { cmd: 'puback', messageId: 1 }, { cmd: 'pubrec', messageId: 2 }, { cmd: 'pubrel', messageId: 9 }, { cmd: 'pubcomp', messageId: 2 },
  { cmd: 'pingreq' }, { cmd: 'disconnect' },
].map((p) => mqttPacket.generate(p))
const connectPacket = (id: string): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: rnd() < 0.8, clientId: id, keepalive: 10, ...(rnd() < 0.2 ? { will: { topic: 'fuzz/will', payload: Buffer.from('w'), qos: 1, retain: false } } : {}) })
const pingreq = mqttPacket.generate({ cmd: 'pingreq' })

function mutate (b: Buffer): Buffer {
  const out = Buffer.from(b)
  switch (int(8)) {
    case 0: for (let i = 0; i < 1 + int(4); i++) out[int(out.length)] ^= 1 << int(8); return out // bit flips
    case 1: out[int(out.length)] = int(256); return out // byte replace
    case 2: return out.subarray(0, int(out.length)) // truncate
    case 3: if (out.length > 1) out[1] = int(256); return out // wrong remaining length
    case 4: out[0] = (out[0] & 0xf0) | int(16); return out // wrong flags
    case 5: out[0] = (int(16) << 4) | (out[0] & 0x0f); return out // wrong type (incl. reserved 0 and 15)
    case 6: return Buffer.concat([out, Buffer.from([0xff, 0xff, 0xff, 0x7f])]) // huge length appended
    default: { const other = pick(corpus); const cut = int(out.length); return Buffer.concat([out.subarray(0, cut), other.subarray(int(other.length))]) } // splice
  }
}

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
      const parts = [rnd() < 0.7 ? connectPacket(`fz-${n}`) : mutate(connectPacket(`fz-${n}`))]
      for (let i = 0; i < 1 + int(5); i++) parts.push(rnd() < 0.15 ? pick(corpus) : mutate(pick(corpus)))
      parts.push(pingreq)
      s.write(Buffer.concat(parts))
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
