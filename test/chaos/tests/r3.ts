// R3: R2 with the project's ioredis options at Sentinel down-after 1000 and
// 3000 ms: no command may be rejected by retry exhaustion, and while Redis is
// away for more than 2 s QoS1 intake must pause (or the offline queue stay small).
import { row, type ChaosTest, type Row } from '../report.ts'
import { failoverRun } from './r2.ts'

export const r3: ChaosTest = {
  id: 'R3',
  title: 'Retry-budget guard',
  async run (ctx) {
    const rows: Row[] = []
    for (const downAfter of [1000, 3000]) {
      const r = await failoverRun(ctx, `R3-${downAfter}`, downAfter)
      rows.push(row('R3', `down-after ${downAfter}: 0 commands rejected by retry exhaustion`, `${r.maxRetriesErrors} MaxRetriesPerRequest errors in node logs; ${r.nodeExits} node exits`, r.maxRetriesErrors === 0 && r.nodeExits === 0))
      const outageLong = r.failoverMs > 2000
      // Command connections run without an offline queue (enableOfflineQueue false), so the
      // observable form of back-pressure is: no PUBACK for QoS1 while Redis is away.
      rows.push(row('R3', `down-after ${downAfter}: QoS1 intake paused while Redis is down > 2 s`, outageLong ? `${r.ackedDuringOutage} PUBACKs between kill+2 s and failover (${r.failoverMs} ms); ${r.refused} publishes refused; longest PUBACK gap ${r.longestAckGapMs} ms` : `outage lasted ${r.failoverMs} ms (≤ 2 s): nothing to pause`, r.ackedDuringOutage === 0, { failoverMs: r.failoverMs }))
      const lost = r.reports.reduce((a, x) => a + x.lost, 0)
      rows.push(row('R3', `down-after ${downAfter}: 0 acked lost (all subscribers)`, `${lost} lost over ${r.reports.length} subscribers, ${r.acked} acked`, lost === 0))
    }
    return rows
  },
}
