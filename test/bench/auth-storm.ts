/**
 * Reconnect storm with scrypt credentials [R9], on one standalone node:
 *   1. cold: CLIENTS clients (sharing USERS app accounts) connect at once; every
 *      distinct password costs one scrypt, the rest wait in the bounded queue
 *      or hit the credential cache;
 *   2. warm: all disconnect and reconnect at once, as after a node failure.
 * Prints time to all connected, the auth outcomes (cache hit rate) and the
 * node's event-loop lag p99. Run: npm run bench:auth  (CLIENTS=2000 USERS=20)
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
const metric = async (re: RegExp): Promise<number> => Number(re.exec(await node.metrics())?.[1] ?? 0)
const authCounts = async (): Promise<Record<string, number>> => {
  const out: Record<string, number> = {}
  for (const m of (await node.metrics()).matchAll(/thingmesh_auth_total\{result="([a-z_]+)"\} (\d+)/g)) out[m[1]] = Number(m[2])
  return out
}

try {
  const admin = await adminClient(node.port)
  for (let u = 0; u < USERS; u++) await admin.call('users/put', { username: `bench${u}`, role: 'app', password: `bench-password-${u}` })
  await admin.close()

  const storm = async (label: string): Promise<MqttClient[]> => {
    const before = await authCounts()
    const t0 = Date.now()
    let refused = 0
    const clients = await Promise.all(Array.from({ length: CLIENTS }, (_v, i) => new Promise<MqttClient | null>((resolve) => {
      const c = mqtt.connect({ host: '127.0.0.1', port: node.port, clientId: `storm-${i}`, username: `bench${i % USERS}`, password: `bench-password-${i % USERS}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 60_000 })
      c.once('connect', () => resolve(c))
      c.once('error', (err) => { if (refused++ < 3) console.log(`  refused: ${err.message}`); c.end(true); resolve(null) })
    })))
    const ms = Date.now() - t0
    const after = await authCounts()
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => (v as number) > 0))
    const ok = (delta.ok_cached ?? 0) + (delta.ok_hashed ?? 0)
    const lag = await metric(/eventloop_lag_max_seconds (\S+)/)
    console.log(`${label}: ${CLIENTS - refused}/${CLIENTS} connected in ${ms} ms (${Math.round(CLIENTS / (ms / 1000))}/s), refused ${refused}; auth ${JSON.stringify(delta)}; cache hit rate ${ok ? ((delta.ok_cached ?? 0) / ok * 100).toFixed(1) : '0'}%; event-loop lag max ${(lag * 1000).toFixed(1)} ms`)
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
