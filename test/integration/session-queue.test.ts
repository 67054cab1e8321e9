import t from 'tap'
import mqtt from 'mqtt'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { startRedis } from '../helpers/redis.ts'
import { close, collect, connect, type MqttClient, type Received } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// A clean CONNECT skips aedes' outgoing-queue drain when the queue is surely
// empty (broker/mqtt/lazy-queue.ts, issue 8). These pin down that a queue a
// persistent session left is still delivered or discarded as MQTT says.
const redis = await startRedis()
const standalone = await startNodeProcess()
const clustered = await startNodeProcess({ redis: redis.url })
t.teardown(async () => { await standalone.kill(); await clustered.kill(); await redis.stop() })

/** A persistent session subscribed to `topic` at QoS 1 that goes away, then `n` QoS 1 messages for it. */
async function leaveQueue (node: NodeProcess, id: string, topic: string, n: number): Promise<void> {
  const sub = await connect(node.port, { clientId: id, clean: false })
  await sub.subscribeAsync(topic, { qos: 1 })
  await sub.endAsync()
  const pub = await connect(node.port, { clientId: `${id}-pub` })
  for (let i = 0; i < n; i++) await pub.publishAsync(topic, `queued-${i}`, { qos: 1 })
  await close(pub)
}

/** Connects, collecting from before the CONNACK: queued messages can come in the same read. */
async function connectCollecting (node: NodeProcess, id: string, clean: boolean): Promise<{ c: MqttClient, got: Received[] }> {
  const c = mqtt.connect({ host: '127.0.0.1', port: node.port, protocolVersion: 4, reconnectPeriod: 0, clientId: id, clean })
  const got = collect(c)
  await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject) })
  return { c, got }
}

/** Connects, subscribes to `topic`, publishes a marker there and returns what arrived up to the marker. */
async function receivedBeforeMarker (node: NodeProcess, id: string, clean: boolean, topic: string): Promise<string[]> {
  const { c, got } = await connectCollecting(node, id, clean)
  await c.subscribeAsync(topic, { qos: 1 })
  const pub = await connect(node.port, { clientId: `${id}-marker` })
  await pub.publishAsync(topic, 'marker', { qos: 1 })
  await waitFor(() => got.some((m) => m.payload === 'marker'), `${id}: the marker`)
  await close(pub, c)
  return got.map((m) => m.payload).filter((p) => p !== 'marker')
}

for (const [mode, node] of [['standalone', standalone], ['cluster', clustered]] as Array<[string, NodeProcess]>) {
  t.test(`${mode}: a persistent session gets what was queued while it was away`, async (t) => {
    const id = `sq-keep-${mode}`
    await leaveQueue(node, id, `sq/${mode}/keep`, 3)
    const { c: back, got } = await connectCollecting(node, id, false)
    await waitFor(() => got.length >= 3, `${id}: 3 queued messages`)
    t.same(got.map((m) => m.payload), ['queued-0', 'queued-1', 'queued-2'])
    await close(back)
  })

  t.test(`${mode}: [MQTT-3.1.2-6] a clean CONNECT discards the queue; a later persistent session does not get it`, async (t) => {
    const id = `sq-clean-${mode}`
    const topic = `sq/${mode}/clean`
    await leaveQueue(node, id, topic, 3)
    t.same(await receivedBeforeMarker(node, id, true, topic), [], 'nothing queued reaches the clean session')
    t.same(await receivedBeforeMarker(node, id, false, topic), [], 'the queue is gone, not kept for the next persistent session')
  })

  t.test(`${mode}: clean sessions that never had a persistent one connect and receive as before`, async (t) => {
    t.same(await receivedBeforeMarker(node, `sq-fresh-${mode}`, true, `sq/${mode}/fresh`), [])
  })
}
