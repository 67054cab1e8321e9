// R1: SIGKILL of a node under a QoS1 stream; restart it later.
import { row, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { withEnv, at, pct } from '../env.ts'
import { noIpCaps } from '../cluster.ts'

export const r1: ChaosTest = {
  id: 'R1',
  title: 'Node crash under QoS1',
  async run (ctx) {
    const rate = ctx.num('CHAOS_R1_RATE', 2000)
    const publishers = ctx.num('CHAOS_R1_PUBLISHERS', 12)
    const killAt = ctx.ms(10_000, 3000)
    const restartAt = ctx.ms(20_000, 6000)
    const runFor = ctx.ms(40_000, 10_000)
    return withEnv({ tag: 'R1', args: noIpCaps() }, async ({ cluster }) => {
      const [n1, n2, n3] = cluster.nodes
      const all = cluster.servers()
      const s = (x: typeof n1) => ({ host: x.host, port: x.port })
      const stream = new Stream({
        name: 'r1', servers: all, publishers, ratePerSec: rate,
        subscribers: [
          { name: 'clean-n2', cls: 'clean', servers: [s(n2)] },
          { name: 'persist-n3', cls: 'persistent', servers: [s(n3)] },
          { name: 'persist-from-n1', cls: 'persistent', servers: [s(n1), s(n2), s(n3)] },
        ],
      })
      try {
        await stream.start()
        const t0 = Date.now()
        const done = stream.publishFor(runFor)
        await at(t0, killAt)
        const onN1 = stream.publishersOn(n1.port)
        await n1.kill('SIGKILL')
        const killed = Date.now()
        ctx.log(`R1: killed n1 at ${killed - t0} ms; ${onN1.length} publishers were on it`)
        await at(t0, restartAt)
        await n1.restart()
        ctx.log(`R1: n1 back at ${Date.now() - t0} ms`)
        await done
        const reports = await stream.finish(ctx.ms(15_000, 8000), [s(n2), s(n3), s(n1)])
        const firstAck = onN1.map((p) => {
          const t = stream.acks.firstAckAfter(p, killed)
          return t === null ? Infinity : t - killed
        })
        const worstFirstAck = firstAck.length ? Math.max(...firstAck) : NaN
        const rows: Row[] = []
        const base = { sent: stream.acks.sent, acked: stream.acks.totalAcked, refused: stream.acks.refused, behind: stream.behind }
        for (const r of reports) {
          rows.push(row('R1', `0 acked lost (${r.cls}, ${r.subscriber})`, `${r.lost} lost of ${r.acked} acked${r.lost ? ` e.g. ${r.lostSample.slice(0, 3).join(', ')}` : ''}; subscriber disconnected ${stream.subscriberDisconnects(r.subscriber)} times`, r.lost === 0, { ...r, ...base }))
        }
        rows.push(row('R1', 'first new PUBACK < 1 s after kill (publishers on n1)', `${Number.isFinite(worstFirstAck) ? Math.round(worstFirstAck) + ' ms' : 'never'} worst of ${onN1.length} publishers`, onN1.length > 0 && worstFirstAck < 1000, { perPublisher: Object.fromEntries(onN1.map((p, i) => [p, firstAck[i]])) }))
        const dupWorst = reports.reduce((a, r) => Math.max(a, r.received ? r.duplicates / r.received : 0), 0)
        rows.push(row('R1', 'duplicates ≤ 0.5% (counted)', reports.map((r) => `${r.subscriber} ${r.duplicates} (${pct(r.duplicates, r.received)})`).join('; '), dupWorst <= 0.005))
        const live = reports.filter((r) => r.subscriber !== 'persist-from-n1')
        const p99 = Math.max(...live.map((r) => r.latency.p99Ms))
        rows.push(row('R1', 'survivors p99 latency < 250 ms', `p99 ${p99} ms (p50 ${Math.max(...live.map((r) => r.latency.p50Ms))} ms) at ${rate} msg/s, ${base.acked} acked`, p99 < 250, { latency: live.map((r) => ({ sub: r.subscriber, ...r.latency })) }))
        const exits = [n2, n3].filter((x) => x.unexpectedExits() > 0 || !x.alive()).map((x) => x.nodeId)
        const fenced = [n2, n3].flatMap((x) => x.log().split('\n').filter((l) => /exit_fenced|node_dead/.test(l)).map((l) => `${x.nodeId}: ${/"event":"([^"]+)"/.exec(l)?.[1]}`))
        rows.push(row('R1', 'survivors (n2, n3) stay up', exits.length ? `${exits.join(', ')} exited; ${fenced.join('; ')}` : 'n2 and n3 up throughout', exits.length === 0, { fenced }))
        return rows
      } finally {
        await stream.close()
      }
    })
  },
}
