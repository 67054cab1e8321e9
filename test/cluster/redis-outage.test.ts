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
