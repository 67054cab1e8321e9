import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { installWirePatches, releasePuback, THINGMESH_BROKER } from '../../broker/mqtt/wire-patches.ts'
import { publishQos1Directly, publishQos1InTurn } from '../../broker/mqtt/qos1-inbound.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'
import { waitFor } from '../helpers/wait.ts'

installWirePatches()

interface Published { topic: string, messageId?: number, qos: number }

/**
 * An in-process aedes marked as thingmesh's, whose published hook holds each
 * QoS 1 publish until the test releases it (as the cluster's routing does).
 */
async function broker (inTurn: boolean, mayQueue?: (topic: string) => boolean) {
  const held: Array<{ packet: Published, client: object, cb: () => void }> = []
  const b = await Aedes.createBroker({
    published: (packet: Published, client: object | null, cb: () => void) => {
      if (client !== null && packet.qos === 1) held.push({ packet, client, cb })
      else cb()
    },
  } as never)
  ;(b as unknown as Record<symbol, boolean>)[THINGMESH_BROKER] = true
  if (mayQueue) publishQos1Directly(b, mayQueue)
  const emitted: Array<Record<string, unknown>> = []
  const mq = (b as unknown as { mq: { emit(packet: object, cb: () => void): void } }).mq
  const emit = mq.emit.bind(mq)
  mq.emit = (packet: Record<string, unknown>, cb: () => void) => { if (String(packet.topic).startsWith('in/')) emitted.push({ ...packet }); emit(packet, cb) }
  const throughSeries: string[] = []
  const connacked = new Set<string>()
  b.on('connackSent', (_packet, client) => { connacked.add(client.id) })
  let parsing = false
  const publishedWhileParsing: boolean[] = []
  const publish = b.publish.bind(b)
  b.publish = ((packet: Published, client: unknown, done: unknown) => {
    if (packet.topic.startsWith('in/')) { publishedWhileParsing.push(parsing); throughSeries.push(packet.topic) }
    return (publish as (...a: unknown[]) => void)(packet, client, done)
  }) as never
  const server = createServer((conn) => {
    const client = b.handle(conn as never, undefined as never) as unknown as { _parser: { parse(buf: Buffer): void } }
    const parse = client._parser.parse.bind(client._parser)
    client._parser.parse = (buf) => { parsing = true; try { parse(buf) } finally { parsing = false } }
    if (inTurn) publishQos1InTurn(client as never)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const release = (messageId: number): void => {
    const i = held.findIndex((h) => h.packet.messageId === messageId)
    const [h] = held.splice(i, 1)
    releasePuback(h.client as never, messageId)
    h.cb()
  }
  return {
    port: (server.address() as AddressInfo).port,
    id: b.id,
    aedes: b,
    held,
    release,
    connacked,
    publishedWhileParsing,
    emitted,
    throughSeries,
    stop: async () => { await new Promise<void>((resolve) => b.close(() => resolve())); await new Promise<void>((resolve) => server.close(() => resolve())) },
  }
}

async function connected (b: { port: number, connacked: Set<string> }, id: string) {
  const raw = await rawConnect(b.port)
  raw.send(connectPacket(id))
  await raw.next('connack')
  // aedes marks the CONNACK sent a turn after writing it; until then it queues packets.
  await waitFor(() => b.connacked.has(id), 'connackSent')
  return raw
}

t.test('a QoS 1 PUBLISH is published in the turn it was parsed (aedes: one turn later)', async (t) => {
  for (const inTurn of [true, false]) {
    const b = await broker(inTurn)
    const raw = await connected(b, `turn-${inTurn}`)
    raw.send({ cmd: 'publish', topic: 'in/turn', payload: 'x', qos: 1, messageId: 7 })
    await waitFor(() => b.held.length === 1, 'the publish')
    t.same(b.publishedWhileParsing, [inTurn], inTurn ? 'published while its bytes were parsed' : "aedes' own handler publishes from a later turn")
    b.release(7)
    t.equal((await raw.next('puback')).messageId, 7, 'PUBACK once routed')
    raw.socket.destroy()
    await b.stop()
  }
})

t.test('PUBACKs wait for the routing and leave in arrival order [MQTT-4.6.0-2]', async (t) => {
  const b = await broker(true)
  const raw = await connected(b, 'order')
  for (const id of [11, 12, 13]) raw.send({ cmd: 'publish', topic: 'in/order', payload: String(id), qos: 1, messageId: id })
  await waitFor(() => b.held.length === 3, 'three publishes')
  b.release(13)
  b.release(12)
  // A PINGRESP is written after whatever the socket holds: none came before it.
  raw.send({ cmd: 'pingreq' })
  await raw.next('pingresp')
  t.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 0, 'none while the first is not routed')
  b.release(11)
  const ids = [(await raw.next('puback')).messageId, (await raw.next('puback')).messageId, (await raw.next('puback')).messageId]
  t.same(ids, [11, 12, 13], 'then all three, in arrival order')
  raw.socket.destroy()
  await b.stop()
})

t.test("aedes' checks still apply: a wildcard in the topic closes the connection, nothing is published", async (t) => {
  const b = await broker(true)
  const raw = await connected(b, 'bad')
  raw.send({ cmd: 'publish', topic: 'bad/+/x', payload: 'x', qos: 1, messageId: 1 })
  await raw.closed
  t.equal(b.held.length, 0, 'not published')
  t.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 0, 'no PUBACK')
  await b.stop()
})

t.test("a QoS 1 publish no offline queue can take skips aedes' series; one that may goes through it and later ones follow it", async (t) => {
  const b = await broker(true, (topic) => topic === 'in/queued')
  const raw = await connected(b, 'direct')
  raw.send({ cmd: 'publish', topic: 'in/direct', payload: 'a', qos: 1, messageId: 1 })
  await waitFor(() => b.held.length === 1, 'the publish')
  t.same(b.throughSeries, [], "not through aedes' publish")
  t.match(b.emitted, [{ cmd: 'publish', topic: 'in/direct', qos: 1, clientId: 'direct', messageId: undefined, brokerId: b.id, brokerCounter: Number }], "emitted as aedes' Packet, with the publisher's id")
  t.equal(b.held[0].packet.messageId, 1, 'the published hook gets the client packet')
  b.release(1)
  t.equal((await raw.next('puback')).messageId, 1, 'PUBACK once routed')
  // In one read: the first waits for aedes' offline-enqueue step (a promise turn), the second must not overtake it.
  raw.send(Buffer.concat([2, 3].map((id) => mqttPacket.generate({ cmd: 'publish', topic: id === 2 ? 'in/queued' : 'in/direct', payload: 'b', qos: 1, messageId: id, retain: false, dup: false }))))
  await waitFor(() => b.held.length === 2, 'both publishes')
  t.same(b.throughSeries, ['in/queued', 'in/direct'], "a publish that may be queued goes through aedes' series, the next follows it")
  t.same(b.emitted.slice(1).map((p) => p.topic), ['in/queued', 'in/direct'], 'emitted in arrival order')
  b.release(2)
  b.release(3)
  t.same([(await raw.next('puback')).messageId, (await raw.next('puback')).messageId], [2, 3])
  raw.send({ cmd: 'publish', topic: 'in/direct', payload: 'c', qos: 1, messageId: 4 })
  await waitFor(() => b.held.length === 1, 'the last publish')
  t.same(b.throughSeries, ['in/queued', 'in/direct'], 'once the series is empty, direct again')
  b.release(4)
  await raw.next('puback')
  raw.socket.destroy()
  await b.stop()
})

t.test("a clean session's PUBACK skips the persistence call (RedisPersistence has nothing stored for it); a persistent session's still asks", async (t) => {
  const b = await broker(true, () => false)
  const persistence = (b.aedes as unknown as { persistence: { outgoingClearMessageId(...a: unknown[]): Promise<unknown> } }).persistence
  const clearCalls: string[] = []
  const clear = persistence.outgoingClearMessageId.bind(persistence)
  persistence.outgoingClearMessageId = (client: unknown, packet: unknown) => { clearCalls.push((client as { id: string }).id); return clear(client, packet) }
  for (const clean of [true, false]) {
    const id = `puback-${clean}`
    const raw = await rawConnect(b.port)
    raw.send(connectPacket(id, { clean }))
    await raw.next('connack')
    await waitFor(() => b.connacked.has(id), 'connackSent')
    raw.send(Buffer.concat([mqttPacket.generate({ cmd: 'puback', messageId: 5 }), mqttPacket.generate({ cmd: 'pingreq' })]))
    await raw.next('pingresp')
    t.same(clearCalls, clean ? [] : [id], clean ? 'clean: no persistence call, and the parser read on' : 'persistent: the persistence is asked')
    raw.socket.destroy()
  }
  await b.stop()
})
