import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, connect, type MqttClient } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// QoS 1 between nodes takes the direct link and is acknowledged by the
// receiver once delivered (broker/cluster/links/router.ts). When the receiver
// is SIGKILLed mid-stream, the publisher still gets its PUBACKs (what the link
// did not acknowledge goes through Redis), and a persistent subscriber of the
// dead node, back on the survivor, gets every PUBACKed message at least once,
// first arrivals in the order published: what crash.test.ts promises when
// QoS 1 went through Redis.
const redis = await startRedis()
const nodes = await startCluster(redis.url, 2, ['--publish-rate-per-client', '0'])
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B] = nodes

const metric = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await A.metrics())?.[1] ?? 0)

t.test('receiver SIGKILLed mid-stream: every PUBACKed QoS 1 message reaches its persistent subscriber, in order', async (t) => {
  const seen: string[] = []
  const listen = (c: MqttClient): void => { c.on('message', (_topic, p) => seen.push(p.toString())) }
  const sub = await connect(B.port, { clientId: 'crash-sub', clean: false })
  sub.on('close', () => {})
  listen(sub)
  await sub.subscribeAsync('crash/#', { qos: 1 })
  const pub = await connect(A.port, { clientId: 'crash-pub' })
  // The subscription reaches A through Redis (interest notice): wait until a probe arrives.
  await waitFor(async () => { await pub.publishAsync('crash/x', 'probe', { qos: 1 }); return seen.includes('probe') }, 'routed to B')
  const linkBefore = Number(/^thingmesh_bus_transport_messages_total\{transport="link",direction="sent"\} (\d+)/m.exec(await A.metrics())?.[1] ?? 0)

  const N = 2000
  const sent: string[] = []
  const acked = new Set<string>()
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < N) {
      const payload = `m${next++}`
      sent.push(payload)
      await pub.publishAsync('crash/x', payload, { qos: 1 })
      acked.add(payload)
    }
  }
  const lanes = Promise.all(Array.from({ length: 10 }, lane))
  await waitFor(() => acked.size >= 600, '600 acknowledged')
  const linkAtKill = Number(/^thingmesh_bus_transport_messages_total\{transport="link",direction="sent"\} (\d+)/m.exec(await A.metrics())?.[1] ?? 0) - linkBefore
  await B.kill('SIGKILL')
  await lanes
  t.equal(acked.size, N, 'the publisher got every PUBACK after the kill too')
  t.ok(linkAtKill >= 500, `before the kill, over the link (${linkAtKill})`)

  const back = await connect(A.port, { clientId: 'crash-sub', clean: false })
  listen(back)
  await waitFor(() => sent.every((m) => seen.includes(m)), 'every acknowledged message at the subscriber', 20_000).catch(() => {})
  const firsts = [...new Set(seen.filter((m) => m !== 'probe'))]
  t.same(sent.filter((m) => !firsts.includes(m)), [], 'none lost')
  t.same(firsts, sent, 'first arrivals in the order published')
  t.comment(`QoS 1 link batches acknowledged ${await metric('thingmesh_cluster_link_qos1_batches_total{outcome="acked"}')}, resent ${await metric('thingmesh_cluster_link_qos1_batches_total{outcome="resent"}')}; duplicates at the subscriber ${seen.length - firsts.length - 1}`)
  await close(back, pub)
})
