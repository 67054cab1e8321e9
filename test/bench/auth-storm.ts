/**
 * Reconnect storm with scrypt credentials [R9], on one standalone node:
 *   1. cold: CLIENTS clients (sharing USERS app accounts) connect at once; every
 *      distinct password costs one scrypt, the rest wait in the bounded queue
 *      or hit the credential cache;
 *   2. warm: all disconnect and reconnect at once, as after a node failure.
 * Prints time to all connected, the auth outcomes (scrypts avoided by the
 * cache or by sharing an in-flight check) and the node's event-loop lag.
 * Run: npm run bench:auth  (CLIENTS=2000 USERS=20)
 */
import { startNodeProcess } from '../helpers/node.ts'
import { adminClient } from '../helpers/admin.ts'
import mqtt, { type MqttClient } from 'mqtt'

const CLIENTS = Number(process.env.CLIENTS ?? 2000)
const USERS = Number(process.env.USERS ?? 20)

const node = await startNodeProcess({
  anonymous: false,
  // One address is all we have here: its connection limits are lifted for the bench.
  args: ['--admin-password', 'admin-secret-1', '--connect-rate-per-ip', '0', '--max-connections-per-ip', '0', '--log-level', process.env.LOG_LEVEL ?? 'warn'],
})
const authCounts = (text: string): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const m of text.matchAll(/thingmesh_auth_total\{result="([a-z_]+)"\} (\d+)/g)) out[m[1]] = Number(m[2])
  return out
}
// prom-client resets its event-loop histogram at each scrape: a poll every 500 ms gives one p99 per interval.
const lagOf = (text: string, stat: 'p99' | 'max'): number => Number(new RegExp(`^thingmesh_process_nodejs_eventloop_lag_${stat}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000

try {
  const admin = await adminClient(node.port)
  for (let u = 0; u < USERS; u++) await admin.call('users/put', { username: `bench${u}`, role: 'app', password: `bench-password-${u}` })
  await admin.close()

  const storm = async (label: string): Promise<MqttClient[]> => {
    const before = authCounts(await node.metrics())
    const lags: Array<{ p99: number, max: number }> = []
    const poll = setInterval(() => { node.metrics().then((m) => { lags.push({ p99: lagOf(m, 'p99'), max: lagOf(m, 'max') }) }, () => {}) }, 500)
    const t0 = Date.now()
    let refused = 0
    const clients = await Promise.all(Array.from({ length: CLIENTS }, (_v, i) => new Promise<MqttClient | null>((resolve) => {
      const c = mqtt.connect({ host: '127.0.0.1', port: node.port, clientId: `storm-${i}`, username: `bench${i % USERS}`, password: `bench-password-${i % USERS}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 60_000 })
      let settled = false
      const fail = (why: string): void => { if (settled) return; settled = true; if (refused++ < 3) console.log(`  refused: ${why}`); c.end(true); resolve(null) }
      c.once('error', (err) => fail(err.message))
      // A connect timeout or a reset before CONNACK closes without 'error' when reconnecting is off.
      c.once('close', () => fail('closed before CONNACK'))
      c.once('connect', () => { if (settled) return; settled = true; resolve(c) })
    })))
    const ms = Date.now() - t0
    clearInterval(poll)
    const text = await node.metrics()
    lags.push({ p99: lagOf(text, 'p99'), max: lagOf(text, 'max') })
    const after = authCounts(text)
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0))
    const ok = (delta.ok_cached ?? 0) + (delta.ok_hashed ?? 0) + (delta.ok_shared ?? 0)
    const worst = (k: 'p99' | 'max'): string => Math.max(...lags.map((l) => l[k]).filter(Number.isFinite)).toFixed(1)
    console.log(`${label}: ${CLIENTS - refused}/${CLIENTS} connected in ${ms} ms (${Math.round(CLIENTS / (ms / 1000))}/s), refused ${refused}; auth ${JSON.stringify(delta)}; scrypt avoided (cache hit or shared check) ${ok ? (((delta.ok_cached ?? 0) + (delta.ok_shared ?? 0)) / ok * 100).toFixed(1) : '0'}%; node event-loop lag worst 500-ms p99 ${worst('p99')} ms, max ${worst('max')} ms`)
    return clients.filter((c): c is MqttClient => c !== null)
  }

  console.log(`auth storm: ${CLIENTS} clients, ${USERS} users, scrypt N=2^15 r=8 p=3, 2 hashes at once`)
  const cold = await storm('cold storm')
  await Promise.all(cold.map((c) => c.endAsync(true)))
  const warm = await storm('warm reconnect storm')
  await Promise.all(warm.map((c) => c.endAsync(true)))
} finally {
  if (process.env.LOG_LEVEL) {
    const events = new Map<string, number>()
    for (const line of node.log().split('\n')) { const m = /"event":"([^"]+)"(?:.*"reason":"([^"]+)")?/.exec(line); if (m) events.set(m[1] + (m[2] ? ':' + m[2] : ''), (events.get(m[1] + (m[2] ? ':' + m[2] : '')) ?? 0) + 1) }
    console.log('node log events:', Object.fromEntries(events))
  }
  await node.kill()
}
