// R4: the Redis primary is paused (SIGSTOP) for 4 s and resumed: Sentinel
// promotes a replica meanwhile, the old primary comes back still believing it
// is primary (split brain) until it is demoted. Writes it acknowledged in
// that window are lost. Measured with raw SETs and with a queued persistent
// session fed by a QoS1 stream.
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { withEnv, at } from '../env.ts'
import { noIpCaps } from '../cluster.ts'
import { startWriteProbe } from '../writeprobe.ts'

export const r4: ChaosTest = {
  id: 'R4',
  title: 'Redis primary pause (split brain)',
  async run (ctx) {
    const rate = ctx.num('CHAOS_R4_RATE', 1000)
    const pauseMs = 4000
    const lagS = 1
    const serverArgs = ['--min-replicas-to-write', '1', '--min-replicas-max-lag', String(lagS)]
    // The queued session holds the whole stream (30 s × rate): the default
    // 10,000-message cap would drop the oldest, which is not what R4 measures.
    return withEnv({ tag: 'R4', args: [...noIpCaps(), '--max-queued-messages', '200000'], topology: { serverArgs } }, async ({ topo, cluster }) => {
      const [n1, n2, n3] = cluster.nodes
      const s = (x: typeof n1) => ({ host: x.host, port: x.port })
      const stream = new Stream({
        name: 'r4', servers: cluster.servers(), publishers: 8, ratePerSec: rate,
        subscribers: [
          { name: 'clean-n2', cls: 'clean', servers: [s(n2)] },
          // Offline for the whole stream: every message goes through its Redis queue.
          { name: 'queued', cls: 'persistent', servers: [s(n3)] },
        ],
      })
      const wp = startWriteProbe(() => topo.client(), 'chaos:r4:w:', 10, 300_000, async () => topo.direct(await topo.primaryPort()))
      try {
        await stream.start()
        await stream.subs[1].client.endAsync(false)
        const t0 = Date.now()
        const runFor = ctx.ms(30_000, 15_000)
        const done = stream.publishFor(runFor)
        await at(t0, ctx.ms(8000, 3000))
        const primary = await topo.primary()
        const stoppedAt = Date.now()
        process.kill(primary.pid(), 'SIGSTOP')
        await at(stoppedAt, pauseMs)
        process.kill(primary.pid(), 'SIGCONT')
        ctx.log(`R4: primary ${primary.port} paused ${Date.now() - stoppedAt} ms`)
        const newPort = await topo.waitFailover(primary.port, 30_000).catch(() => primary.port)
        await done
        const probe = await wp.stop(stoppedAt)
        const reports = await stream.finish(ctx.ms(15_000, 10_000), [s(n3)])
        const queued = reports.find((r) => r.subscriber === 'queued')!
        const clean = reports.find((r) => r.subscriber === 'clean-n2')!
        const bound = lagS * rate
        const rows: Row[] = []
        rows.push(info('R4', 'topology', `min-replicas-to-write 1, min-replicas-max-lag ${lagS}; primary ${primary.port} → ${newPort === primary.port ? 'no failover' : newPort}; stream ${rate} msg/s`))
        rows.push(row('R4', `acked Redis writes lost ≤ max-lag × rate (raw SET probe, ${100}/s → bound ${lagS * 100})`, `${probe.lost} of ${probe.acked} acked SETs lost; ${probe.failed} refused; write gap ${probe.unavailableMs} ms`, probe.lost <= lagS * 100))
        rows.push(row('R4', `acked QoS1 lost for a queued persistent session ≤ ${bound}`, `${queued.lost} of ${queued.acked} acked messages missing after reconnect${queued.lost ? `; e.g. ${queued.lostSample.slice(0, 3).join(', ')}` : ''}`, queued.lost <= bound, { ...queued }))
        rows.push(row('R4', 'clean subscriber (live delivery): 0 acked lost', `${clean.lost} of ${clean.acked}`, clean.lost === 0))
        rows.push(row('R4', 'errors surface: broker stops PUBACKing, no silent drop', `${stream.acks.refused} publishes refused, ${stream.acks.sent - stream.acks.totalAcked - stream.acks.refused} unanswered; node exits ${cluster.nodes.reduce((a, x) => a + x.unexpectedExits(), 0)}`, queued.lost <= bound && cluster.nodes.every((x) => x.unexpectedExits() === 0)))
        return rows
      } finally {
        await stream.close()
      }
    })
  },
}
