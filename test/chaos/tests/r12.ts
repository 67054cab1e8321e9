// R12 (short): a soak of 2 min at --duration 1 on 3 nodes. QoS1 and QoS2
// streams with persistent subscribers, QoS0 retained updates, and a churning
// population of clean-session clients (each lives a few seconds, then a new
// client id replaces it). After a warm-up quarter, node RSS and Redis
// used_memory must not drift by 10%; afterwards no Redis key may remain for a
// gone clean session, no acked QoS1/2 message may be missing for a persistent
// subscriber, and no node may log an unhandled error.
import mqtt, { type MqttClient } from 'mqtt'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { withSimpleEnv } from '../env.ts'
import { noIpCaps, rssOf, type ChaosNode } from '../cluster.ts'

const MB = 1024 * 1024

export const r12: ChaosTest = {
  id: 'R12',
  title: 'Long soak (short)',
  async run (ctx) {
    const runMs = ctx.ms(120_000, 30_000)
    const warmMs = Math.round(runMs / 4)
    const rate = ctx.num('CHAOS_R12_RATE', 300)
    const population = ctx.num('CHAOS_R12_CLIENTS', 300)
    return withSimpleEnv({ nodes: 3, tag: 'R12', args: noIpCaps() }, async ({ redis, cluster }) => {
      const [n1, n2, n3] = cluster.nodes
      const s = (x: ChaosNode) => ({ host: x.host, port: x.port })
      const mk = (name: string, qos: 1 | 2, share: number): Stream => new Stream({
        name, servers: cluster.servers(), publishers: 3, ratePerSec: rate * share, qos,
        subscribers: [
          { name: 'persist-n2', cls: 'persistent', servers: [s(n2), s(n3)] },
          { name: 'persist-n3', cls: 'persistent', servers: [s(n3), s(n1)] },
          { name: 'clean-n1', cls: 'clean', servers: [s(n1), s(n2)] },
        ],
      })
      const q1 = mk('r12q1', 1, 0.6)
      const q2 = mk('r12q2', 2, 0.2)
      const r = redis.client()
      const churned: string[] = []
      const live = new Map<string, MqttClient>()
      let churnTimer: NodeJS.Timeout | null = null
      let retainTimer: NodeJS.Timeout | null = null
      let seq = 0
      const spawn = (): void => {
        const id = `r12-churn-${++seq}`
        const c = mqtt.connect({ ...s(cluster.nodes[seq % 3]), clientId: id, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 })
        c.on('error', () => {})
        c.once('connect', () => { c.subscribe(`r12/churn/${seq % 50}`, { qos: 1 }) })
        live.set(id, c)
      }
      try {
        await q1.start()
        await q2.start()
        for (let i = 0; i < population; i++) spawn()
        const retainer = mqtt.connect({ servers: cluster.servers(), clientId: 'r12-retainer', protocolVersion: 4, reconnectPeriod: 200 })
        retainer.on('error', () => {})
        let retained = 0
        retainTimer = setInterval(() => { if (retainer.connected) retainer.publish(`r12/retained/${retained++ % 50}`, `v${retained}`, { qos: 0, retain: true }) }, Math.max(5, Math.round(1000 / (rate * 0.2))))
        // Churn: the whole population is replaced about every 20 s (the plan's 20% per 10 min, compressed).
        const perTick = Math.max(1, Math.round(population / 20))
        churnTimer = setInterval(() => {
          const ids = [...live.keys()].slice(0, perTick)
          for (const id of ids) { live.get(id)!.end(true); live.delete(id); churned.push(id) }
          for (let k = 0; k < ids.length; k++) spawn()
        }, 1000)
        const t0 = Date.now()
        const d1 = q1.publishFor(runMs)
        const d2 = q2.publishFor(runMs)
        const sample = async (): Promise<{ rss: number[], used: number }> => ({
          rss: cluster.nodes.map((x) => rssOf(x.pid())),
          used: Number(/used_memory:(\d+)/.exec(await r.info('memory'))?.[1] ?? 0),
        })
        await new Promise((resolve) => setTimeout(resolve, warmMs))
        const warm = await sample()
        ctx.log(`R12: warm-up done at ${Date.now() - t0} ms; RSS ${warm.rss.map((x) => (x / MB).toFixed(0)).join('/')} MB, used_memory ${(warm.used / MB).toFixed(1)} MB`)
        await Promise.all([d1, d2])
        clearInterval(churnTimer); churnTimer = null
        clearInterval(retainTimer); retainTimer = null
        const end = await sample()
        await retainer.endAsync(true).catch(() => {})
        // Persistent subscribers come back on a node that is still up (a dead one would only hide the queue).
        const up = cluster.nodes.filter((x) => x.alive()).map(s)
        const back = up.length ? up : [s(n1)]
        const reports = [...(await q1.finish(ctx.ms(15_000, 8000), back)), ...(await q2.finish(ctx.ms(15_000, 8000), back))]
        for (const c of live.values()) { c.end(true); churned.push(c.options.clientId!) }
        live.clear()

        const rows: Row[] = []
        const rssDrift = warm.rss.map((w, i) => (end.rss[i] - w) / w)
        const worstRss = Math.max(...rssDrift)
        rows.push(row('R12', 'node RSS drift < 10% after warm-up', cluster.nodes.map((x, i) => `${x.nodeId} ${(warm.rss[i] / MB).toFixed(0)} → ${(end.rss[i] / MB).toFixed(0)} MB (${(rssDrift[i] * 100).toFixed(1)}%)`).join('; ') + ` over ${Math.round((runMs - warmMs) / 1000)} s`, worstRss < 0.1))
        const usedDrift = (end.used - warm.used) / warm.used
        rows.push(row('R12', 'Redis used_memory drift < 10% after warm-up', `${(warm.used / MB).toFixed(1)} → ${(end.used / MB).toFixed(1)} MB (${(usedDrift * 100).toFixed(1)}%)`, usedDrift < 0.1))

        // Keys of gone clean sessions: give the nodes a moment to process the last disconnects.
        const perClient = ['q:', 'qp:', 'qm:', 'in:', 'subs:']
        let leaked: string[] = []
        for (let attempt = 0; attempt < 20; attempt++) {
          leaked = []
          for (let k = 0; k < churned.length; k += 200) {
            const chunk = churned.slice(k, k + 200)
            const pipe = r.pipeline()
            for (const id of chunk) for (const p of perClient) pipe.exists(`tm:{thingmesh}:${p}${id}`)
            pipe.hmget('tm:{thingmesh}:owners', ...chunk)
            pipe.smismember('tm:{thingmesh}:subclients', ...chunk)
            const res = (await pipe.exec()) ?? []
            chunk.forEach((id, i) => perClient.forEach((p, j) => { if (res[i * perClient.length + j][1] === 1) leaked.push(p + id) }))
            const owners = res[chunk.length * perClient.length][1] as Array<string | null>
            owners.forEach((o, i) => { if (o !== null) leaked.push(`owners[${chunk[i]}]`) })
            const members = res[chunk.length * perClient.length + 1][1] as number[]
            members.forEach((m, i) => { if (m === 1) leaked.push(`subclients[${chunk[i]}]`) })
          }
          if (leaked.length === 0) break
          await new Promise((resolve) => setTimeout(resolve, 250))
        }
        rows.push(row('R12', '0 leaked keys for gone clean sessions', `${leaked.length} of ${churned.length} churned clean clients' keys/entries left${leaked.length ? `: ${leaked.slice(0, 5).join(', ')}` : ''}`, leaked.length === 0 && churned.length > 0))
        for (const rep of reports.filter((x) => x.cls === 'persistent')) {
          rows.push(row('R12', `0 acked QoS1/2 lost for persistent sessions (${rep.subscriber})`, `${rep.lost} lost of ${rep.acked} acked, ${rep.duplicates} dup${rep.lost ? `; e.g. ${rep.lostSample.slice(0, 3).join(', ')}` : ''}`, rep.lost === 0 && rep.acked > 0))
        }
        const clean = reports.filter((x) => x.cls === 'clean')
        rows.push(info('R12', 'clean subscribers', clean.map((x) => `${x.subscriber}: ${x.lost} lost of ${x.acked}, p99 ${x.latency.p99Ms} ms`).join('; ')))
        const logs = cluster.nodes.map((x) => x.log()).join('\n').split('\n')
        // A crash prints a stack (not JSON) before "Node.js vX"; a fatal log line is level 60.
        const unhandled = logs.filter((l) => /unhandled|uncaught/i.test(l) || /"level":60/.test(l) || (!l.startsWith('{') && /^\w*Error\b|^Error:/.test(l.trim())))
        const errors = logs.filter((l) => /"level":50/.test(l))
        const exits = cluster.nodes.filter((x) => !x.alive() || x.unexpectedExits() > 0).map((x) => x.nodeId)
        rows.push(row('R12', '0 unhandled errors in node logs, no exits', `${unhandled.length} unhandled/uncaught/fatal/crash lines, ${errors.length} error-level lines${unhandled.length ? `: ${unhandled[0].slice(0, 200)}` : ''}; ${exits.length ? `${exits.join(', ')} exited` : 'all nodes up'}`, unhandled.length === 0 && exits.length === 0, { errorSample: errors.slice(0, 5) }))
        rows.push(info('R12', 'load', `${Math.round(runMs / 1000)} s; QoS1 ${q1.acks.totalAcked} + QoS2 ${q2.acks.totalAcked} acked at ${rate * 0.8} msg/s; ${retained} retained updates; ${churned.length} clean clients churned over a population of ${population}`))
        return rows
      } finally {
        if (churnTimer) clearInterval(churnTimer)
        if (retainTimer) clearInterval(retainTimer)
        for (const c of live.values()) c.end(true)
        await q1.close()
        await q2.close()
        r.disconnect()
      }
    })
  },
}
