// R5: one node loses Redis (a black hole: packets vanish, connections stay
// open) for 6 s and for 30 s. It must notice within 2 s and stop PUBACKing
// (or drop its clients so they fail over); after the heal nothing acked is
// lost and the offline queues in Redis hold no duplicates.
//
// With root and iptables the cut is an iptables DROP inside a private netns
// (the node runs there); otherwise a TCP proxy in drop mode between the node
// and Redis does the same to the node's established connections.
import { Redis } from 'ioredis'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { at } from '../env.ts'
import { noIpCaps, startChaosCluster, startChaosNode, type ChaosCluster, type ChaosNode } from '../cluster.ts'
import { startProxy, type TcpProxy } from '../faults.ts'
import { startRedis } from '../../helpers/redis.ts'
import { saveLogs } from '../env.ts'

async function firstUnhealthy (node: ChaosNode, from: number, maxMs: number): Promise<number> {
  while (Date.now() - from < maxMs) {
    const h = await node.health().catch(() => ({ status: 0 }))
    if (h.status !== 200) return Date.now() - from
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return Infinity
}

export const r5: ChaosTest = {
  id: 'R5',
  title: 'Partition node ↔ Redis',
  async run (ctx) {
    const rate = ctx.num('CHAOS_R5_RATE', 400)
    const cuts = [6000, Math.max(10_000, ctx.ms(30_000))]
    const redis = await startRedis()
    let proxy: TcpProxy | null = null
    let cluster: ChaosCluster | null = null
    const extra: ChaosNode[] = []
    try {
      proxy = await startProxy(redis.port)
      // n1 reaches Redis only through the proxy; n2 and n3 directly.
      // The offline session holds the whole stream; the queue cap (10,000 by default) must not be what is measured.
      const args = [...noIpCaps(), '--max-queued-messages', '200000']
      const n1 = await startChaosNode({ redis: `redis://127.0.0.1:${proxy.port}`, nodeId: 'n1', args })
      extra.push(n1)
      cluster = await startChaosCluster(redis.url, 2, args, { expectMembers: 3, firstIndex: 2 })
      const [n2, n3] = cluster.nodes
      cluster.nodes.unshift(n1)
      await cluster.waitMembers(3)
      const s = (x: ChaosNode) => ({ host: x.host, port: x.port })
      const rows: Row[] = []
      rows.push(info('R5', 'fault', 'TCP proxy in drop mode between n1 and Redis (bytes discarded, connections left open: what iptables DROP does to established flows)'))
      for (const cutMs of cuts) {
        const stream = new Stream({
          name: `r5-${cutMs}`, servers: [s(n1), s(n2), s(n3)], publishers: 6, ratePerSec: rate,
          subscribers: [
            { name: 'clean-n2', cls: 'clean', servers: [s(n2)] },
            { name: 'persist-n3', cls: 'persistent', servers: [s(n3), s(n2)] },
            { name: 'offline', cls: 'persistent', servers: [s(n2)] },
          ],
        })
        try {
          await stream.start()
          await stream.subs[2].client.endAsync(false)
          const t0 = Date.now()
          const done = stream.publishFor(cutMs + ctx.ms(20_000, 8000))
          await at(t0, 3000)
          const onN1 = new Set(stream.publishersOn(n1.port))
          const cut = Date.now()
          proxy.set('drop')
          const detectMs = await firstUnhealthy(n1, cut, cutMs)
          await at(cut, cutMs)
          proxy.set('pass')
          proxy.cut() // the node's connections were silent so long that both sides reconnect
          const healed = Date.now()
          ctx.log(`R5: cut ${cutMs} ms; n1 unhealthy after ${detectMs} ms`)
          await done
          await stream.settleAcks()
          // Consistency: no packet key twice in an offline queue (replayed timed-out writes).
          const direct = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
          direct.on('error', () => {})
          let dupEntries = 0
          let lists = 0
          let stream2 = '0'
          do {
            const [next, keys] = await direct.scan(stream2, 'MATCH', 'tm:{thingmesh}:q:*', 'COUNT', 500)
            stream2 = next
            for (const k of keys) {
              lists++
              const items = await direct.lrange(k, 0, -1)
              dupEntries += items.length - new Set(items).size
            }
          } while (stream2 !== '0')
          direct.disconnect()
          const reports = await stream.finish(ctx.ms(20_000, 10_000), [s(n2), s(n3)])
          // PUBACKs n1 itself sent more than 2 s into the cut.
          let lateAcks = 0
          let movedMs = 0
          for (const p of stream.pubs.filter((x) => onN1.has(x.id))) {
            lateAcks += p.acksByPort.filter(([t, port]) => port === n1.port && t > cut + 2000 && t < healed).length
            const elsewhere = p.acksByPort.find(([t, port]) => t > cut && port !== n1.port)
            movedMs = Math.max(movedMs, elsewhere ? elsewhere[0] - cut : Infinity)
          }
          const label = `${cutMs / 1000} s cut`
          rows.push(row('R5', `${label}: node detects it ≤ 2 s`, `n1 /healthz not 200 after ${Number.isFinite(detectMs) ? detectMs + ' ms' : 'never during the cut'}`, detectMs <= 2000))
          rows.push(row('R5', `${label}: no PUBACK from n1 later than 2 s into the cut, or clients failed over ≤ 3 s`, `${lateAcks} late PUBACKs from n1; ${onN1.size} publishers on n1, first PUBACK elsewhere after ${Number.isFinite(movedMs) ? movedMs + ' ms' : 'never (stayed on n1)'}`, lateAcks === 0 || movedMs <= 3000))
          const lost = reports.map((r) => `${r.subscriber} ${r.lost}/${r.acked}`).join(', ')
          rows.push(row('R5', `${label}: after the heal 0 acked lost`, lost, reports.every((r) => r.lost === 0), { reports }))
          rows.push(row('R5', `${label}: no duplicate entries in outgoing queues`, `${dupEntries} duplicate entries over ${lists} queue lists`, dupEntries === 0))
        } finally {
          await stream.close()
        }
      }
      rows.push(row('R5', 'no node exits', `${[n1, n2, n3].reduce((a, x) => a + x.unexpectedExits(), 0)}`, [n1, n2, n3].every((x) => x.unexpectedExits() === 0)))
      return rows
    } finally {
      if (cluster) { saveLogs('R5', cluster); await cluster.stop() }
      for (const x of extra) await x.kill('SIGKILL')
      await proxy?.close()
      await redis.stop()
    }
  },
}
