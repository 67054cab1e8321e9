import t from 'tap'
import { describeFigures, runPrimaryKill } from '../helpers/sentinel.ts'

// R2/R3 with --redis-wait-replicas 1: the Redis primary is SIGKILLed under a
// QoS1 stream through three nodes on a Sentinel URL (primary, two replicas,
// three Sentinels, down-after 1000 ms). Every PUBACK waited for one replica,
// so no acknowledged message may be missing from the persistent subscriber.
// Clean-session loss is reported, not asserted: inter-node publishes ride
// Redis pub/sub, which is at-most-once across a failover.
t.setTimeout(300_000)

t.test('primary SIGKILL with --redis-wait-replicas 1', async (t) => {
  const f = await runPrimaryKill({ nodeArgs: ['--redis-wait-replicas', '1', '--redis-wait-timeout-ms', '500'] })
  for (const line of describeFigures('WAIT 1', f)) t.comment(line)
  t.equal(f.nodeExits, 0, 'no node process exited')
  t.equal(f.maxRetriesCrashes, 0, 'no MaxRetriesPerRequestError crash in node logs')
  t.ok(f.serviceBackMs >= 0 && f.serviceBackMs <= 10_000, `nodes serve again within 10 s of the kill (${f.serviceBackMs} ms; -1 = not within 30 s)`)
  t.equal(f.unhealthyAtEnd, 0, 'every node is healthy at the end')
  t.ok(f.acked > 0, 'the stream was acknowledged')
  t.equal(f.persistentLost, 0, 'persistent subscriber lost no acknowledged message')
})
