// R9: reconnect storm with scrypt credentials. CLIENTS clients (sharing USERS
// app accounts, like a fleet of apps or gateways) spread over 3 nodes; n1 is
// SIGKILLed and the ~1/3 it held reconnect to the survivors at once. Judged:
// every one of them back ≤ 30 s, the survivors' event-loop lag p99 during the
// storm, and the survivors' credential-cache hit rate.
import mqtt, { type MqttClient } from 'mqtt'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { withEnv } from '../env.ts'
import { noIpCaps, type ChaosNode } from '../cluster.ts'
import { adminConnect } from '../admin.ts'
import type { Server } from '../stream.ts'

const ADMIN_PASSWORD = 'chaos-admin-secret-1'

/** thingmesh_auth_total by result. */
async function authCounts (n: ChaosNode): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const text = await n.metrics().catch(() => '')
  for (const m of text.matchAll(/thingmesh_auth_total\{result="([a-z_]+)"\} (\d+)/g)) out[m[1]] = Number(m[2])
  return out
}

/**
 * prom-client's event-loop p99 covers the time since the previous scrape (it
 * resets its histogram on each collect), so polling gives one p99 per interval.
 */
async function lagP99Ms (n: ChaosNode): Promise<number> {
  const m = /^thingmesh_process_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(await n.metrics())
  return m ? Number(m[1]) * 1000 : NaN
}

export const r9: ChaosTest = {
  id: 'R9',
  title: 'Reconnect storm with auth',
  async run (ctx) {
    const clients = Math.round(ctx.num('CHAOS_R9_CLIENTS', 2000))
    const users = Math.max(1, Math.min(clients, Math.round(ctx.num('CHAOS_R9_USERS', 20))))
    const args = [...noIpCaps(), '--admin-password', ADMIN_PASSWORD]
    return withEnv({ tag: 'R9', args }, async ({ cluster }) => {
      const [n1, n2, n3] = cluster.nodes
      const s = (x: ChaosNode): Server => ({ host: x.host, port: x.port })
      const admin = await adminConnect(s(n2), 'admin', ADMIN_PASSWORD)
      try {
        for (let u = 0; u < users; u++) {
          const r = await admin.call('users/put', { username: `r9user${u}`, role: 'app', password: `r9-password-${u}` }, 30_000)
          if (!r.ok) throw new Error(`users/put r9user${u}: ${r.error?.code} ${r.error?.message}`)
        }
      } finally { await admin.close() }

      // Client i starts on node i % 3; clients starting on n1 fail over half to n2, half to n3.
      const orders: Server[][] = [[s(n1), s(n2), s(n3)], [s(n1), s(n3), s(n2)], [s(n2), s(n3), s(n1)], [s(n3), s(n2), s(n1)]]
      const conns: Array<{ c: MqttClient, connects: number[] }> = []
      const open = (i: number): Promise<void> => new Promise((resolve, reject) => {
        const first = i % 3
        const servers = first === 0 ? orders[(i / 3) % 2 < 1 ? 0 : 1] : orders[first + 1]
        const c = mqtt.connect({
          servers, clientId: `r9-${i}`, username: `r9user${i % users}`, password: `r9-password-${i % users}`,
          protocolVersion: 4, clean: true, keepalive: 30, reconnectPeriod: 500, connectTimeout: 20_000, reconnectOnConnackError: true,
        })
        const rec = { c, connects: [] as number[] }
        conns.push(rec)
        c.on('error', () => {})
        c.on('connect', () => rec.connects.push(Date.now()))
        const timer = setTimeout(() => reject(new Error(`r9-${i} did not connect in 120 s`)), 120_000)
        c.once('connect', () => { clearTimeout(timer); resolve() })
      })
      try {
        const t0 = Date.now()
        // Batches, so setting up is not itself a storm.
        for (let i = 0; i < clients; i += 200) await Promise.all(Array.from({ length: Math.min(200, clients - i) }, (_v, k) => open(i + k)))
        ctx.log(`R9: ${clients} clients (${users} users) connected in ${Date.now() - t0} ms`)
        // The victim is the live node holding the most clients now (on a starved machine a node can be fenced during set-up).
        const up = cluster.nodes.filter((x) => x.alive())
        const held = (x: ChaosNode): typeof conns => conns.filter((c) => c.c.connected && Number(c.c.options.port) === x.port)
        const victim = up.reduce((a, b) => held(b).length > held(a).length ? b : a, up[0])
        const survivors = up.filter((x) => x !== victim)
        const downBefore = cluster.nodes.filter((x) => !x.alive()).map((x) => x.nodeId)
        const onN1 = held(victim)
        ctx.log(`R9: killing ${victim.nodeId}, which holds ${onN1.length} clients${downBefore.length ? `; already down: ${downBefore.join(', ')}` : ''}`)
        const before = await Promise.all(survivors.map(authCounts))
        await Promise.all(survivors.map((n) => lagP99Ms(n).catch(() => NaN))) // resets the survivors' lag histograms

        const killed = Date.now()
        await victim.kill('SIGKILL')
        const limitMs = 30_000
        const lags: number[] = []
        let backMs = Infinity
        // Bounded by the limit plus 15 s, so a slow storm is still measured.
        while (Date.now() - killed < limitMs + 15_000) {
          await new Promise((resolve) => setTimeout(resolve, 1000))
          for (const v of await Promise.all(survivors.map((n) => lagP99Ms(n).catch(() => NaN)))) if (Number.isFinite(v)) lags.push(v)
          const back = onN1.filter((x) => x.c.connected && x.connects.some((t) => t > killed))
          if (back.length === onN1.length) {
            backMs = Math.max(...back.map((x) => x.connects.find((t) => t > killed)! - killed))
            break
          }
        }
        const backCount = onN1.filter((x) => x.c.connected && x.connects.some((t) => t > killed)).length
        const after = await Promise.all(survivors.map(authCounts))
        const delta = (k: string): number => after.reduce((a, m, i) => a + (m[k] ?? 0) - (before[i][k] ?? 0), 0)
        const cached = delta('ok_cached')
        const shared = delta('ok_shared')
        const hashed = delta('ok_hashed')
        const refusedKinds = Object.fromEntries(['busy', 'bad_credentials', 'throttled', 'unavailable', 'gone'].map((k) => [k, delta(k)]).filter(([, v]) => (v as number) > 0))
        const hitRate = cached + hashed + shared === 0 ? 0 : cached / (cached + hashed + shared)
        const lagMax = lags.length ? Math.max(...lags) : NaN
        const rows: Row[] = []
        rows.push(row('R9', `all clients of the killed node (${victim.nodeId}) reconnected ≤ 30 s (${clients} clients, ${users} users, scrypt)`, `${backCount}/${onN1.length} back; ${Number.isFinite(backMs) ? `last after ${backMs} ms` : 'not all within 45 s'}`, onN1.length > 0 && backMs <= limitMs, { refusedDuringStorm: refusedKinds }))
        rows.push(row('R9', 'survivors event-loop lag p99 < 200 ms during the storm', `worst 1-s-interval p99 ${Number.isFinite(lagMax) ? lagMax.toFixed(1) : '?'} ms over ${lags.length} samples (${survivors.map((x) => x.nodeId).join(', ')})`, lagMax < 200, { lags }))
        rows.push(row('R9', 'credential cache hit rate > 90% on the survivors', `${(hitRate * 100).toFixed(1)}%: ${cached} cached, ${hashed} hashed, ${shared} joined a check in flight; refused ${JSON.stringify(refusedKinds)}`, hitRate > 0.9))
        rows.push(info('R9', 'credentials', `${users} app users shared by ${clients} clients (CHAOS_R9_USERS); the cache is per node, so a client whose credentials a survivor has never seen costs one scrypt there`))
        // Why a node left: its fencing log line, or the last line it wrote (a crash prints a stack, not JSON).
        const exits = cluster.nodes.filter((x) => x !== victim).filter((x) => !x.alive() || x.unexpectedExits() > 0).map((x) => `${x.nodeId} (${/"event":"node\.exit_fenced"/.test(x.log()) ? 'fenced' : x.log().trim().split('\n').filter((l) => !l.startsWith('{') && /Error/.test(l))[0]?.slice(0, 120) ?? 'no reason logged'})`)
        rows.push(row('R9', 'every node but the victim stays up (set-up and storm)', exits.length ? `${exits.join(', ')} exited` : 'all up', exits.length === 0))
        return rows
      } finally {
        await Promise.all(conns.map((x) => x.c.endAsync(true).catch(() => {})))
      }
    })
  },
}
