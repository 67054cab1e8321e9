// R11: engine definition propagation. Every 2 s a template is updated through
// `$admin/templates/put`; after each update `cluster/status` is polled until
// every live node reports having applied that definitions version, and the
// lag is judged (≤ 2 s). Once in the run the Redis primary is SIGKILLed right
// before an update: that one is judged against failover + 2 s. Meanwhile a
// device writes to a thing whose rule throws on every evaluation (division by
// zero): no node may die of it.
import mqtt from 'mqtt'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { withEnv } from '../env.ts'
import { noIpCaps, type ChaosNode } from '../cluster.ts'
import { adminConnect, type Admin } from '../admin.ts'
import type { Server } from '../stream.ts'

const ADMIN_PASSWORD = 'chaos-admin-secret-1'

interface Status { version: number, nodes: Array<{ brokerId: string, version: number }> }

export const r11: ChaosTest = {
  id: 'R11',
  title: 'Engine update propagation',
  async run (ctx) {
    const updates = Math.max(5, Math.round(30 * ctx.scale))
    const killAtUpdate = Math.floor(updates / 2)
    const limitMs = 2000
    return withEnv({ tag: 'R11', args: [...noIpCaps(), '--admin-password', ADMIN_PASSWORD] }, async ({ topo, cluster }) => {
      const s = (x: ChaosNode): Server => ({ host: x.host, port: x.port })
      // An admin session that moves to another node if its node or Redis drops it.
      const conn: { admin: Admin | null, which: number } = { admin: null, which: 0 }
      const call = async (op: string, args: object, deadlineMs = 30_000): Promise<{ ok: boolean, result?: unknown, error?: { code: string, message: string } }> => {
        const until = Date.now() + deadlineMs
        let last: unknown = null
        while (Date.now() < until) {
          try {
            conn.admin ??= await adminConnect(s(cluster.nodes[conn.which % cluster.nodes.length]), 'admin', ADMIN_PASSWORD)
            const r = await conn.admin.call(op, args, 5000)
            if (r.ok || r.error?.code?.startsWith('ENGINE_')) return r
            last = r.error
          } catch (err) {
            last = err
            await conn.admin?.close()
            conn.admin = null
            conn.which++
          }
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
        throw new Error(`admin ${op}: no success in ${deadlineMs} ms (last: ${(last as Error)?.message ?? JSON.stringify(last)})`)
      }
      const status = async (): Promise<Status | null> => {
        const r = await call('cluster/status', {}, 5000).catch(() => null)
        const e = (r?.result as { engine?: Status } | undefined)?.engine
        return e ?? null
      }
      /** Resolves with ms from `since` until every live node reports ≥ version (Infinity after `maxMs`). */
      const converged = async (version: number, since: number, maxMs: number): Promise<{ ms: number, last: Status | null }> => {
        let last: Status | null = null
        while (Date.now() - since < maxMs) {
          last = await status()
          // Live nodes: a node that exits (e.g. fenced during the failover) is reported by its own row.
          const live = cluster.nodes.filter((x) => x.alive()).length
          if (last && last.nodes.length >= live && last.nodes.every((n) => n.version >= version)) return { ms: Date.now() - since, last }
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
        return { ms: Infinity, last }
      }

      const template = (k: number): object => ({ id: 'R11Tank', description: `update ${k}`, properties: { level: { type: 'number' } } })
      const dev = mqtt.connect({ servers: cluster.servers(), clientId: 'r11-dev', protocolVersion: 4, reconnectPeriod: 200, connectTimeout: 5000, reconnectOnConnackError: true })
      dev.on('error', () => {})
      let ruleErrors = 0
      dev.on('message', (_t, p) => { if (p.toString().includes('r11-throws')) ruleErrors++ })
      await new Promise<void>((resolve, reject) => { dev.once('connect', () => resolve()); setTimeout(() => reject(new Error('r11-dev did not connect')), 20_000) })
      await dev.subscribeAsync('things/r11-tank/errors', { qos: 0 })
      let writer: NodeJS.Timeout | null = null
      try {
        const t = await call('templates/put', template(0))
        if (!t.ok) throw new Error(`templates/put: ${JSON.stringify(t.error)}`)
        for (const [op, def] of [['things/put', { id: 'r11-tank', template: 'R11Tank' }], ['rules/put', { id: 'r11-throws', template: 'R11Tank', when: 'level / 0 > 1', actions: [{ type: 'raiseAlert', alert: 'never', severity: 'info', message: 'x' }] }]] as const) {
          const r = await call(op, def)
          if (!r.ok) throw new Error(`${op}: ${JSON.stringify(r.error)}`)
        }
        let writes = 0
        writer = setInterval(() => { if (dev.connected) { dev.publish('things/r11-tank/properties/level', String(++writes), { qos: 1 }) } }, 100)

        const lags: number[] = []
        const missing: string[] = []
        const refused: string[] = []
        let failover: { failoverMs: number, convergedMs: number, version: number } | null = null
        const started = Date.now()
        for (let k = 1; k <= updates; k++) {
          const due = started + k * 2000
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())))
          if (k === killAtUpdate) {
            const primary = await topo.primary()
            const killed = Date.now()
            primary.proc.kill('SIGKILL')
            const failoverMs = await topo.waitFailover(primary.port, 60_000).then(() => Date.now() - killed, () => Infinity)
            const r = await call('templates/put', template(k), 60_000)
            if (!r.ok) refused.push(`update ${k}: ${r.error?.code}`)
            const version = (r.result as { version?: number } | undefined)?.version ?? NaN
            const c = await converged(version, killed, failoverMs + 30_000)
            failover = { failoverMs, convergedMs: c.ms, version }
            ctx.log(`R11: update ${k} across a primary kill: failover ${failoverMs} ms, all nodes on v${version} ${c.ms} ms after the kill`)
            continue
          }
          const sent = Date.now()
          const r = await call('templates/put', template(k))
          if (!r.ok) { refused.push(`update ${k}: ${r.error?.code}`); lags.push(Infinity); continue }
          const version = (r.result as { version?: number } | undefined)?.version ?? NaN
          const c = await converged(version, sent, 10_000)
          lags.push(c.ms)
          if (!Number.isFinite(c.ms)) missing.push(`v${version}: ${JSON.stringify(c.last?.nodes)}`)
        }
        clearInterval(writer)
        writer = null
        const final = await status()
        const rows: Row[] = []
        const worst = lags.length ? Math.max(...lags) : Infinity
        const sorted = [...lags].sort((a, b) => a - b)
        rows.push(row('R11', `all nodes on the same definitions version ≤ 2 s after each update (${lags.length} updates every 2 s)`, `worst ${Number.isFinite(worst) ? worst + ' ms' : 'not converged in 10 s or refused'}, median ${sorted[sorted.length >> 1]} ms${refused.length ? `; ${refused.length} updates refused: ${refused.slice(0, 3).join(', ')}` : ''}${missing.length ? `; not converged: ${missing.slice(0, 3).join('; ')}` : ''}`, worst <= limitMs, { lags, refused }))
        if (failover) {
          const ok = failover.convergedMs <= failover.failoverMs + limitMs
          rows.push(row('R11', 'update during a Redis primary kill: all nodes on it ≤ failover + 2 s', `failover ${failover.failoverMs} ms; all nodes on v${failover.version} ${Number.isFinite(failover.convergedMs) ? failover.convergedMs + ' ms' : 'never'} after the kill (limit ${failover.failoverMs + limitMs} ms)`, ok))
        }
        const stale = final ? final.nodes.filter((n) => n.version !== final.version) : []
        rows.push(row('R11', '0 nodes on a stale version after the test', final ? `engine v${final.version}; ${final.nodes.map((n) => `${n.brokerId.split('~')[0]} v${n.version}`).join(', ')}` : 'cluster/status unanswered', final !== null && stale.length === 0 && final.nodes.length === cluster.nodes.length))
        // An exit is the rule's fault unless the node logged why it left (fenced after being declared dead).
        const exits = cluster.nodes.filter((x) => !x.alive() || x.unexpectedExits() > 0)
        const fenced = exits.filter((x) => /"event":"node\.exit_fenced"/.test(x.log())).map((x) => x.nodeId)
        const other = exits.filter((x) => !fenced.includes(x.nodeId)).map((x) => x.nodeId)
        rows.push(row('R11', 'a rule that throws never kills a node', `${writes} writes to a thing whose rule throws (division by zero); ${ruleErrors} rule errors published on things/r11-tank/errors; ${other.length ? `${other.join(', ')} exited without a fencing log line` : 'no node died of it'}${fenced.length ? `; ${fenced.join(', ')} exited fenced (declared dead during the failover)` : ''}`, other.length === 0 && ruleErrors > 0))
        if (fenced.length) rows.push(row('R11', 'no node exits during the Redis failover', `${fenced.join(', ')} declared dead by the others and fenced itself (node.exit_fenced)`, false))
        rows.push(info('R11', 'method', 'templates/put via $admin every 2 s; convergence = cluster/status reports every live node at ≥ the version the put returned, polled every 50 ms'))
        return rows
      } finally {
        if (writer) clearInterval(writer)
        await dev.endAsync(true).catch(() => {})
        await conn.admin?.close()
      }
    })
  },
}
