import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { installWirePatches, releasePuback, THINGMESH_BROKER } from '../../broker/mqtt/wire-patches.ts'
import { publishQos1InTurn } from '../../broker/mqtt/qos1-inbound.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'
import { waitFor } from '../helpers/wait.ts'

installWirePatches()

interface Published { topic: string, messageId?: number, qos: number }

/**
 * An in-process aedes marked as thingmesh's, whose published hook holds each
 * QoS 1 publish until the test releases it (as the cluster's routing does).
 */
async function broker (inTurn: boolean) {
  const held: Array<{ packet: Published, client: object, cb: () => void }> = []
  const b = await Aedes.createBroker({
    published: (packet: Published, client: object | null, cb: () => void) => {
      if (client !== null && packet.qos === 1) held.push({ packet, client, cb })
      else cb()
    },
  } as never)
  ;(b as unknown as Record<symbol, boolean>)[THINGMESH_BROKER] = true
  const connacked = new Set<string>()
  b.on('connackSent', (_packet, client) => { connacked.add(client.id) })
  let parsing = false
  const publishedWhileParsing: boolean[] = []
  const publish = b.publish.bind(b)
  b.publish = ((packet: Published, client: unknown, done: unknown) => {
    if (packet.topic.startsWith('in/')) publishedWhileParsing.push(parsing)
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
    held,
    release,
    connacked,
    publishedWhileParsing,
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
