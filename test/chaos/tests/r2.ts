// R2: SIGKILL of the Redis primary under a QoS1 stream; Sentinel promotes a
// replica. R3 runs the same with down-after 1000 and 3000 and judges retry
// exhaustion and back-pressure.
import { row, info, type ChaosContext, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { withEnv, at, pct } from '../env.ts'
import { noIpCaps } from '../cluster.ts'
import { startWriteProbe } from '../writeprobe.ts'

export interface FailoverRun {
  rate: number
  failoverMs: number
  /** Raw SETs, acknowledged by the primary alone (asynchronous replication). */
  probe: Awaited<ReturnType<ReturnType<typeof startWriteProbe>['stop']>>
  /** SETs acknowledged once WAIT saw a replica (as `--redis-wait-replicas 1`). */
  confirmed: Awaited<ReturnType<ReturnType<typeof startWriteProbe>['stop']>>
  reports: Awaited<ReturnType<Stream['finish']>>
  nodeExits: number
  maxRetriesErrors: number
  /** PUBACKs received for publishes sent between kill+2 s and the failover. */
  ackedDuringOutage: number
  sentDuringOutage: number
  longestAckGapMs: number
  acked: number
  refused: number
}

export async function failoverRun (ctx: ChaosContext, tag: string, downAfterMs: number): Promise<FailoverRun> {
  const rate = ctx.num('CHAOS_R2_RATE', 400)
  const killAt = ctx.ms(10_000, 3000)
  const runFor = ctx.ms(30_000, 10_000)
  return withEnv({ tag, args: noIpCaps(), topology: { downAfterMs } }, async ({ topo, cluster }) => {
    const [n1, n2, n3] = cluster.nodes
    const s = (x: typeof n1) => ({ host: x.host, port: x.port })
    const stream = new Stream({
      name: tag.toLowerCase(), servers: cluster.servers(), publishers: 8, ratePerSec: rate,
      subscribers: [
        { name: 'clean-n2', cls: 'clean', servers: [s(n2)] },
        { name: 'clean-n3', cls: 'clean', servers: [s(n3)] },
        { name: 'persist-n1', cls: 'persistent', servers: [s(n1), s(n2), s(n3)] },
        { name: 'persist-n3', cls: 'persistent', servers: [s(n3), s(n1), s(n2)] },
      ],
    })
    const verifier = async () => topo.direct(await topo.primaryPort())
    const wp = startWriteProbe(() => topo.client(), `chaos:${tag}:w:`, 10, 300_000, verifier)
    const wpc = startWriteProbe(() => topo.client(), `chaos:${tag}:wc:`, 10, 300_000, verifier, { replicas: 1, timeoutMs: 200 })
    try {
      await stream.start()
      const t0 = Date.now()
      const done = stream.publishFor(runFor)
      await at(t0, killAt)
      const primary = await topo.primary()
      const sentBefore = stream.acks.sent
      const killed = Date.now()
      primary.proc.kill('SIGKILL')
      const failoverMs = await topo.waitFailover(primary.port, 60_000).then(() => Date.now() - killed, () => Infinity)
      ctx.log(`${tag}: primary ${primary.port} killed at ${killed - t0} ms; writable primary after ${failoverMs} ms`)
      const sentAtFailover = stream.acks.sent
      await done
      const probe = await wp.stop(killed)
      const confirmed = await wpc.stop(killed)
      const reports = await stream.finish(ctx.ms(15_000, 10_000), [s(n2), s(n3)])
      // Acks are per (publisher, seq); what was sent in the outage window is approximated by the send counter.
      let ackedDuringOutage = 0
      let longestAckGapMs = 0
      const allAcks: number[] = []
      for (const times of stream.acks.ackTimes.values()) allAcks.push(...times)
      allAcks.sort((a, b) => a - b)
      for (const t of allAcks) if (t > killed + 2000 && t < killed + failoverMs) ackedDuringOutage++
      for (let k = 1; k < allAcks.length; k++) if (allAcks[k] >= killed && allAcks[k - 1] <= killed + failoverMs) longestAckGapMs = Math.max(longestAckGapMs, allAcks[k] - allAcks[k - 1])
      const logs = cluster.nodes.map((x) => x.log()).join('\n')
      return {
        rate, failoverMs, probe, confirmed, reports,
        nodeExits: cluster.nodes.reduce((a, x) => a + x.unexpectedExits(), 0),
        maxRetriesErrors: (logs.match(/MaxRetriesPerRequest|max retries per request/gi) ?? []).length,
        ackedDuringOutage, sentDuringOutage: sentAtFailover - sentBefore, longestAckGapMs,
        acked: stream.acks.totalAcked, refused: stream.acks.refused,
      }
    } finally {
      await stream.close()
    }
  })
}

export const r2: ChaosTest = {
  id: 'R2',
  title: 'Redis primary SIGKILL',
  async run (ctx) {
    const r = await failoverRun(ctx, 'R2', 1000)
    const rows: Row[] = []
    rows.push(row('R2', '0 broker-node exits', `${r.nodeExits} exits`, r.nodeExits === 0))
    rows.push(row('R2', 'Redis write unavailability ≤ 5 s', `${Number.isFinite(r.probe.unavailableMs) ? r.probe.unavailableMs : 'never recovered'} ms without an acked write (Sentinel: writable primary after ${r.failoverMs} ms); broker PUBACK gap ${r.longestAckGapMs} ms`, r.probe.unavailableMs <= 5000))
    // Redis' own acknowledgement of a write is not durable under asynchronous
    // replication: what the replica had not received when the primary died is
    // gone (the replication lag, which a loaded machine stretches). A write is
    // acknowledged durably once WAIT saw a replica, which is what
    // --redis-wait-replicas gives the broker's QoS1 PUBACKs; the raw loss is reported.
    rows.push(row('R2', '0 acked Redis writes lost', `${r.confirmed.lost} of ${r.confirmed.acked} SETs acknowledged by WAIT 1 missing after failover (${r.confirmed.failed} refused or unconfirmed)`, r.confirmed.lost === 0))
    rows.push(info('R2', 'raw SETs lost (asynchronous replication, no WAIT)', `${r.probe.lost} of ${r.probe.acked} acked SETs missing after failover (${r.probe.failed} refused)`))
    for (const rep of r.reports) {
      const target = rep.cls === 'persistent' ? '0 lost after reconnect' : 'target 0 lost'
      rows.push(row('R2', `${rep.cls} subscriber ${rep.subscriber}: ${target}`, `${rep.lost} lost of ${rep.acked} acked (${pct(rep.lost, rep.acked)}), ${rep.duplicates} dup, at ${r.rate} msg/s${rep.lost ? `; e.g. ${rep.lostSample.slice(0, 3).join(', ')}` : ''}`, rep.lost === 0, { ...rep }))
    }
    rows.push(row('R2', 'no MaxRetriesPerRequestError', `${r.maxRetriesErrors} in node logs`, r.maxRetriesErrors === 0))
    rows.push(info('R2', 'publishes refused during failover', `${r.refused} refused (not acked) of ${r.acked + r.refused}; ${r.ackedDuringOutage} PUBACKs between kill+2 s and failover`))
    return rows
  },
}
