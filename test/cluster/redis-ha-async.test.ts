import t from 'tap'
import { describeFigures, runPrimaryKill } from '../helpers/sentinel.ts'

// R2 with asynchronous replication (the default): the same primary SIGKILL
// as redis-ha.test.ts. Writes the primary acknowledged but had not yet sent
// to a replica are gone after the failover, so the persistent subscriber's
// loss is measured and reported, not asserted to be zero.
t.setTimeout(300_000)

t.test('primary SIGKILL with asynchronous replication', async (t) => {
  const f = await runPrimaryKill({ nodeArgs: [] })
  for (const line of describeFigures('async', f)) t.comment(line)
  t.equal(f.nodeExits, 0, 'no node process exited')
  t.equal(f.maxRetriesCrashes, 0, 'no MaxRetriesPerRequestError crash in node logs')
  t.ok(f.serviceBackMs >= 0 && f.serviceBackMs <= 10_000, `nodes serve again within 10 s of the kill (${f.serviceBackMs} ms; -1 = not within 30 s)`)
  t.equal(f.unhealthyAtEnd, 0, 'every node is healthy at the end')
  t.ok(f.acked > 0, 'the stream was acknowledged')
})
