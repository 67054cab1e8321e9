import t from 'tap'
import { connect as tcpConnect } from 'node:net'
import mqttPacket from 'mqtt-packet'
import { startNodeProcess } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Chaos R8 in small: one subscriber stops reading. Its unsent data is capped
// (--max-client-buffer-bytes): QoS0 messages to it are dropped past the cap,
// a QoS1 message disconnects it, and nobody else waits for it. The drain
// timeout is long here on purpose: before the guard, the other subscriber got
// its messages only after the frozen one was dropped at that timeout.
const node = await startNodeProcess({ args: ['--max-client-buffer-bytes', '262144', '--drain-timeout-ms', '60000', '--publish-rate-per-client', '0'] })
t.teardown(async () => { await node.kill() })

const counter = async (action: string): Promise<number> =>
  Number(new RegExp(`thingmesh_slow_consumer_total\\{action="${action}"\\} (\\d+)`).exec(await node.metrics())?.[1] ?? 0)

t.test('a subscriber that stops reading holds up no one, and its unsent data stays capped', async (t) => {
  const frozen = tcpConnect(node.port, '127.0.0.1')
  let frozenClosed = false
  frozen.on('error', () => {})
  frozen.on('close', () => { frozenClosed = true })
  await new Promise<void>((resolve) => frozen.once('connect', () => resolve()))
  frozen.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'sc-frozen', keepalive: 0 }))
  frozen.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sc/#', qos: 0 }, { topic: 'sc1/#', qos: 1 }] }))
  // CONNACK and SUBACK arrive together or apart; both are 4-5 bytes.
  let seen = 0
  await new Promise<void>((resolve) => { const on = (d: Buffer): void => { seen += d.length; if (seen >= 9) { frozen.off('data', on); resolve() } }; frozen.on('data', on) })
  frozen.pause()

  const reader = await connect(node.port, { clientId: 'sc-reader' })
  let got = 0
  reader.on('message', () => { got++ })
  await reader.subscribeAsync('sc/#', { qos: 0 })
  const pub = await connect(node.port, { clientId: 'sc-pub' })
  const N = 3000
  const payload = Buffer.alloc(8192, 'x')
  for (let i = 0; i < N; i++) {
    pub.publish('sc/data', payload, { qos: 0 })
    if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve))
  }
  await waitFor(() => got >= N, `the reading subscriber got all ${N} messages (has ${got})`, 30_000)
  t.equal(got, N, 'every message reached the subscriber that reads')
  // Past the grace (its socket full for a second), the frozen subscriber's QoS0 messages are dropped.
  const until = Date.now() + 15_000
  while (await counter('qos0_dropped') === 0 && Date.now() < until) {
    for (let i = 0; i < 20; i++) pub.publish('sc/data', payload, { qos: 0 })
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(await counter('qos0_dropped') > 0, 'messages to the frozen subscriber past the cap were dropped and counted')
  t.notOk(frozenClosed, 'the frozen subscriber is still connected (QoS0 only: its messages are dropped)')

  await pub.publishAsync('sc1/important', 'q1', { qos: 1 })
  await waitFor(async () => await counter('disconnected') >= 1, 'the frozen subscriber disconnected on a QoS1 message over the cap', 10_000)
  await waitFor(() => /"event":"client.slow_consumer".*"clientId":"sc-frozen"/.test(node.log()), 'the disconnect logged with the client id')
  t.equal((await node.health()).status, 200, 'node healthy')
  frozen.destroy()
  await close(reader, pub)
})

t.test('a subscriber that reads takes a burst larger than the cap without being disconnected', async (t) => {
  const reader = await connect(node.port, { clientId: 'sc-burst-reader', clean: false })
  let got = 0
  reader.on('message', () => { got++ })
  await reader.subscribeAsync('burst/#', { qos: 1 })
  const pub = await connect(node.port, { clientId: 'sc-burst-pub' })
  const payload = Buffer.alloc(64 * 1024, 'b')
  const before = await counter('disconnected')
  // 100 x 64 KiB at once: 6.4 MB for a socket capped at 256 KiB of unsent data.
  await Promise.all(Array.from({ length: 100 }, () => pub.publishAsync('burst/x', payload, { qos: 1 })))
  await waitFor(() => got >= 100, `the reader got the whole burst (has ${got})`, 20_000)
  t.ok(reader.connected, 'still connected')
  t.equal(await counter('disconnected'), before, 'no slow-consumer disconnect')
  await close(reader, pub)
})
