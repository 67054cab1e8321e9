import t from 'tap'
import { connect as tcpConnect, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { startRedis } from '../helpers/redis.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// thingmesh writes QoS 1/2 deliveries itself (broker/mqtt/delivery.ts): the
// header encoded once per publish, each subscriber's bytes with its own
// packet id (shared-encoding.ts), in the turn of the publish, and PUBACKs
// held with the socket's other small packets (wire-patches.ts). These pin the
// wire as a subscriber sees it, on a standalone and on a cluster node.
const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  generate(p: object): Buffer
  parser(opts?: object): NodeJS.EventEmitter & { parse(b: Buffer): void }
}

interface Publish { topic: string, payload: Buffer, qos: number, messageId?: number, dup: boolean }

/** A subscriber speaking raw MQTT 3.1.1, so packet ids and acknowledgements are the test's to see and to withhold. */
interface RawSub { socket: Socket, got: Publish[], connack: Promise<{ sessionPresent: boolean }>, closed: Promise<void>, ack(messageId: number): void }

async function rawSub (port: number, clientId: string, clean: boolean, autoAck: (p: Publish) => boolean): Promise<RawSub> {
  const socket = tcpConnect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const got: Publish[] = []
  let connacked: (v: { sessionPresent: boolean }) => void = () => {}
  const connack = new Promise<{ sessionPresent: boolean }>((resolve) => { connacked = resolve })
  const ack = (messageId: number): void => { if (!socket.destroyed) socket.write(mqttPacket.generate({ cmd: 'puback', messageId })) }
  parser.on('packet', (p: Record<string, unknown>) => {
    if (p.cmd === 'connack') connacked({ sessionPresent: p.sessionPresent === true })
    if (p.cmd !== 'publish') return
    const pub = p as unknown as Publish
    got.push(pub)
    if (pub.qos > 0 && autoAck(pub)) ack(pub.messageId!)
  })
  socket.on('data', (d) => parser.parse(d))
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 30 }))
  return { socket, got, connack, closed, ack }
}

async function subscribe (s: RawSub, topic: string, qos: number): Promise<void> {
  await s.connack
  const granted = new Promise<void>((resolve) => {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const onData = (d: Buffer): void => parser.parse(d)
    parser.on('packet', (p: Record<string, unknown>) => { if (p.cmd === 'suback') { s.socket.off('data', onData); resolve() } })
    parser.on('error', () => {})
    s.socket.on('data', onData)
  })
  s.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] }))
  await granted
}

const redis = await startRedis()
const standalone = await startNodeProcess()
const clustered = await startNodeProcess({ redis: redis.url })
t.teardown(async () => { await standalone.kill(); await clustered.kill(); await redis.stop() })

const payloads = (ps: Publish[]): number[] => ps.map((p) => Number(p.payload.toString()))
const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

for (const [mode, node] of [['standalone', standalone], ['cluster', clustered]] as Array<[string, NodeProcess]>) {
  t.test(`${mode}: one QoS 1 publish to many subscribers: each gets it with its own packet id, in order; a QoS 0 subscriber at QoS 0`, async (t) => {
    const N = 300
    const subs = await Promise.all(range(0, 4).map((i) => rawSub(node.port, `q1d-${mode}-${i}`, true, () => true)))
    for (const s of subs) await subscribe(s, `q1d/${mode}/#`, 1)
    const zero = await rawSub(node.port, `q1d-${mode}-zero`, true, () => true)
    await subscribe(zero, `q1d/${mode}/#`, 0)
    const pub = await connect(node.port, { clientId: `q1d-${mode}-pub` })
    // Ten in flight at a time, so deliveries of several publishes share a turn.
    for (let i = 0; i < N; i += 10) await Promise.all(range(i, i + 10).map((k) => pub.publishAsync(`q1d/${mode}/t`, String(k), { qos: 1 })))
    await waitFor(() => [...subs, zero].every((s) => s.got.length >= N), 'every delivery')
    const firstIds = new Set<number>()
    for (const s of subs) {
      t.same(payloads(s.got), range(0, N), 'all, in publish order, each once')
      t.ok(s.got.every((p) => p.qos === 1 && p.topic === `q1d/${mode}/t`), 'at QoS 1')
      const ids = s.got.map((p) => p.messageId!)
      // Each delivery takes the client's next packet id (1..65535, then 1 again).
      t.ok(ids.every((id, i) => i === 0 || id === (ids[i - 1] % 65535) + 1), 'consecutive packet ids of its own')
      firstIds.add(ids[0])
    }
    t.ok(firstIds.size > 1, 'the subscribers\' ids are their own, not one shared sequence')
    t.same(payloads(zero.got), range(0, N), 'the QoS 0 subscriber gets them all, in order')
    t.ok(zero.got.every((p) => p.qos === 0 && p.messageId === undefined), 'at QoS 0, without a packet id')
    await close(pub)
    for (const s of [...subs, zero]) s.socket.destroy()
  })

  t.test(`${mode}: a persistent QoS 1 subscriber that drops mid-stream gets everything it did not acknowledge, in order, then the rest`, async (t) => {
    const N = 400
    const CUT = 100
    const id = `q1p-${mode}`
    const topic = `q1p/${mode}/t`
    // Acknowledges the first CUT deliveries only, then goes away mid-stream.
    let acked = 0
    const first = await rawSub(node.port, id, false, () => ++acked <= CUT)
    await subscribe(first, topic, 1)
    const pub = await connect(node.port, { clientId: `${id}-pub` })
    let sent = 0
    const sending = (async () => {
      for (; sent < N; sent += 10) await Promise.all(range(sent, sent + 10).map((k) => pub.publishAsync(topic, String(k), { qos: 1 })))
    })()
    await waitFor(() => first.got.length >= CUT + 20, 'deliveries past the cut')
    // Half-close after the last acknowledgement: the broker reads them before the end.
    first.socket.end()
    await first.closed
    const before = payloads(first.got)
    t.same(before, range(0, before.length), 'before the cut: in order')
    t.ok(sent < N, `the publisher was still sending (${sent} of ${N})`)
    await sending
    const back = await rawSub(node.port, id, false, () => true)
    t.equal((await back.connack).sessionPresent, true, 'session present')
    await waitFor(() => back.got.length > 0 && Number(back.got.at(-1)!.payload.toString()) === N - 1, 'the last message')
    // [MQTT-4.4.0-1] the unacknowledged ones again, [MQTT-4.6.0-2] in the order published.
    t.same(payloads(back.got), range(CUT, N), `after the reconnect: ${CUT}..${N - 1}, in order, each once`)
    const ids = back.got.map((p) => p.messageId)
    t.equal(new Set(ids).size, ids.length, 'distinct packet ids')
    back.socket.destroy()
    await close(pub)
  })
}
