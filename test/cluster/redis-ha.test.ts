import t, { type Test } from 'tap'
import { describeFigures, runPrimaryKill, runRetainedKill, type FailoverFigures } from '../helpers/sentinel.ts'

// Redis high availability with real processes (test/helpers/sentinel.ts):
// primary, two replicas, three Sentinels (down-after 1000 ms), three nodes on
// the Sentinel URL. R2/R3: the primary is SIGKILLed under a QoS1 stream
// (publishers on node1 and node2, a clean and a persistent subscriber on
// node3, so every message crosses nodes). R7: retained messages survive a
// kill 50 ms after the last PUBACK when PUBACKs wait for a replica.
t.setTimeout(400_000)

const WAIT1 = ['--redis-wait-replicas', '1', '--redis-wait-timeout-ms', '500']

function commonChecks (t: Test, f: FailoverFigures): void {
  t.equal(f.nodeExits, 0, 'no node process exited')
  t.equal(f.nodesDeclaredDead, 0, 'no live node was declared dead (membership waits for its own link before reaping)')
  t.equal(f.maxRetriesRejections, 0, 'no command rejected by ioredis retry exhaustion (R3)')
  t.ok(f.serviceBackMs >= 0 && f.serviceBackMs <= 10_000, `nodes serve again within 10 s of the kill (${f.serviceBackMs} ms; -1 = not within 30 s)`)
  t.same(f.connectionsStillDown, [], 'every Redis connection came back')
  t.equal(f.unhealthyAtEnd, 0, 'every node is healthy at the end')
  t.ok(f.acked > 0, 'the stream was acknowledged')
}

t.test('primary SIGKILL with --redis-wait-replicas 1', async (t) => {
  const f = await runPrimaryKill({ nodeArgs: WAIT1 })
  for (const line of describeFigures('WAIT 1', f)) t.comment(line)
  commonChecks(t, f)
  // Every PUBACK waited for a replica, so the persistent subscriber's queue survived the kill.
  t.equal(f.persistentLost, 0, 'persistent subscriber lost no acknowledged message')
})

t.test('primary SIGKILL with asynchronous replication', async (t) => {
  // Writes the primary acknowledged but had not sent to a replica are gone
  // with it: the persistent subscriber's loss is measured and reported.
  const f = await runPrimaryKill({ nodeArgs: [] })
  for (const line of describeFigures('async', f)) t.comment(line)
  commonChecks(t, f)
})

t.test('R7: retained messages survive a primary SIGKILL 50 ms after the last PUBACK with --redis-wait-replicas 1', async (t) => {
  const r = await runRetainedKill({ nodeArgs: WAIT1, count: 1000, killAfterMs: 50 })
  t.comment(`R7 WAIT 1: ${r.retainedAfter}/${r.published} retained after the failover (${r.failoverMs} ms)`)
  t.equal(r.retainedAfter, r.published, 'every acknowledged retained message is there after the failover')
})
