import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Guarantee 6: Redis goes away and comes back. Nodes keep their clients,
// answer 503 meanwhile, refuse what they cannot make durable, and recover.
const redis = await startRedis()
const nodes = await startCluster(redis.url, 2)
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B] = nodes

t.test('Redis restart: 503 while gone, clients kept, QoS1 refused not acked, service resumes', async (t) => {
  const pub = await connect(A.port, { clientId: 'out-pub' })
  const localSub = await connect(A.port, { clientId: 'out-local' })
  const remoteSub = await connect(B.port, { clientId: 'out-remote' })
  const gotLocal = collect(localSub)
  const gotRemote = collect(remoteSub)
  await localSub.subscribeAsync('out/#', { qos: 0 })
  await remoteSub.subscribeAsync('out/#', { qos: 1 })

  await redis.kill('SIGKILL')
  for (const n of nodes) {
    await waitFor(async () => (await n.health()).status === 503, `${n.nodeId} reports 503`, 10_000)
  }
  t.ok(localSub.connected && remoteSub.connected && pub.connected, 'clients stay connected while Redis is down')

  pub.publish('out/local', 'during-outage', { qos: 0 })
  await waitFor(() => gotLocal.some((m) => m.payload === 'during-outage'), 'same-node QoS0 delivery during the outage')
  t.pass('same-node QoS0 keeps flowing without Redis')

  // A QoS1 publish that cannot reach Redis must not be acknowledged.
  const qos1 = await connect(A.port, { clientId: 'out-qos1' }).catch(() => null)
  t.equal(qos1, null, 'a new connection is refused while the session registry is unreachable')
  let acked = false
  pub.publish('out/q1', 'must-not-ack', { qos: 1 }, (err) => { if (!err) acked = true })
  await waitFor(() => !pub.connected, 'publisher disconnected instead of acked', 10_000)
  t.equal(acked, false, 'QoS1 publish during the outage was not acknowledged')

  await redis.restart()
  for (const n of nodes) {
    await waitFor(async () => (await n.health()).status === 200, `${n.nodeId} healthy again`, 15_000)
  }
  t.equal(A.proc.exitCode, null, 'node A never exited')
  t.equal(B.proc.exitCode, null, 'node B never exited')

  const pub2 = await connect(A.port, { clientId: 'out-pub2' })
  await pub2.publishAsync('out/after', 'after', { qos: 1 })
  await waitFor(() => gotRemote.some((m) => m.payload === 'after'), 'cross-node delivery after recovery')
  t.ok(remoteSub.connected, 'the remote subscriber kept its connection through the outage')
  t.match(A.log(), /"event":"redis.down"/, 'the outage was logged')
  t.match(A.log(), /"event":"redis.up".*"outageMs":\d+/, 'the recovery was logged with the outage length')
  await close(pub, pub2, localSub, remoteSub)
})

// Issue 7 defect: after Redis was unreachable for longer than --dead-after-ms,
// the first node back found every peer silent and declared them dead (their
// wills published, the nodes fenced and exited). A node now reaps only after
// its own link has been up for dead-after (and, in Redis time, only if its own
// previous beat is recent). A node that really died meanwhile is still reaped.
t.test('Redis paused longer than dead-after: no live node declared dead, a killed one is', async (t) => {
  const deadAfterMs = 1500
  const args = ['--heartbeat-ms', '250', '--dead-after-ms', String(deadAfterMs)]
  const r = await startRedis()
  const ns = await startCluster(r.url, 4, args)
  const upAt = Date.now()
  t.teardown(async () => {
    try { process.kill(r.proc.pid!, 'SIGCONT') } catch { /* gone */ }
    await stopAll(ns)
    await r.stop()
  })
  const live = ns.slice(0, 3)
  const victim = ns[3]
  const members = (await live[0].health()).body.members as Array<{ nodeId: string, brokerId: string }>
  const brokerOf = (nodeId: string): string => members.find((m) => m.nodeId === nodeId)!.brokerId
  // The nodes' links must have been up for dead-after before the pause, so that reaping was allowed when it began.
  await waitFor(() => Date.now() - upAt >= 2 * deadAfterMs, 'links up for dead-after', 10_000, 50)

  const pausedAt = Date.now()
  process.kill(r.proc.pid!, 'SIGSTOP')
  await victim.kill('SIGKILL')
  for (const n of live) await waitFor(async () => (await n.health()).status === 503, `${n.nodeId} reports 503 while Redis is paused`, 10_000)
  // The fault itself: Redis must stay away longer than dead-after (twice, to leave no doubt).
  await waitFor(() => Date.now() - pausedAt >= 2 * deadAfterMs, 'pause length', 10_000, 50)
  process.kill(r.proc.pid!, 'SIGCONT')

  const victimBroker = brokerOf(victim.nodeId)
  await waitFor(() => live.some((n) => n.log().includes(victimBroker) && /"event":"cluster.node_dead"/.test(n.log())), 'the killed node to be declared dead', 20_000, 50)
  for (const n of live) await waitFor(async () => (await n.health()).status === 200, `${n.nodeId} healthy again`, 15_000)
  await waitFor(async () => ((await live[0].health()).body.members as unknown[]).length === 3, 'three members', 10_000)
  for (const n of live) {
    const dead = n.log().split('\n').filter((l) => l.includes('"event":"cluster.node_dead"'))
    for (const m of live) t.notOk(dead.some((l) => l.includes(brokerOf(m.nodeId))), `${n.nodeId} did not declare live ${m.nodeId} dead`)
    t.notMatch(n.log(), /"event":"node.exit_fenced"|"event":"cluster.fenced"/, `${n.nodeId} was not fenced`)
    t.equal(n.proc.exitCode, null, `${n.nodeId} is running`)
  }
})
