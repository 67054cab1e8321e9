import t from 'tap'
import { createRequire } from 'node:module'
import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net'
import { Readable, Transform, pipeline as pipelineBinding } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { Aedes } from 'aedes'
import { NothingQueued, skipEmptyQueues } from '../../broker/mqtt/lazy-queue.ts'
import { slimClient } from '../../broker/mqtt/client-slim.ts'
import { RedisPersistence } from '../../broker/persistence/redis-persistence.ts'

const require = createRequire(import.meta.url)
const streamCjs = require('node:stream') as { pipeline: unknown }

/** A persistence whose outgoingStream records the ids it was asked for. */
function fakePersistence (proto: object = Object.prototype) {
  const asked: string[] = []
  const p = Object.create(proto) as { outgoingStream(c: { id: string, clean: boolean }): Readable }
  p.outgoingStream = (c) => { asked.push(c.id); return Readable.from(['queued']) }
  return { p, asked }
}

t.test('a clean client never seen with a persistent session gets the empty queue without asking the persistence', async (t) => {
  const { p, asked } = fakePersistence()
  skipEmptyQueues(p)
  t.ok(p.outgoingStream({ id: 'a', clean: true }) instanceof NothingQueued)
  t.same(asked, [])
})

t.test('a clean CONNECT after a persistent session of that id drains the real queue once [MQTT-3.1.2-6]', async (t) => {
  const { p, asked } = fakePersistence()
  skipEmptyQueues(p)
  t.notOk(p.outgoingStream({ id: 'b', clean: false }) instanceof NothingQueued, 'persistent: the real queue')
  t.notOk(p.outgoingStream({ id: 'b', clean: true }) instanceof NothingQueued, 'first clean CONNECT: the real queue, which aedes clears')
  t.ok(p.outgoingStream({ id: 'b', clean: true }) instanceof NothingQueued, 'cleared: empty from then on')
  t.same(asked, ['b', 'b'])
})

t.test('a persistence that wipes the queue on a clean CONNECT is not asked for clean clients', async (t) => {
  const { p, asked } = fakePersistence(RedisPersistence.prototype)
  skipEmptyQueues(p)
  p.outgoingStream({ id: 'c', clean: false })
  t.ok(p.outgoingStream({ id: 'c', clean: true }) instanceof NothingQueued)
  t.same(asked, ['c'])
})

t.test('pipeline: the ES module binding is the patched one; NothingQueued ends it on a later tick', async (t) => {
  t.equal(pipelineBinding, streamCjs.pipeline, 'import { pipeline } sees the patch')
  let transformed = 0
  const through = new Transform({ objectMode: true, transform (_d, _e, next) { transformed++; next() } })
  let sync = true
  const err = await new Promise<unknown>((resolve) => { pipelineBinding(new NothingQueued(), through, (e) => resolve(e)); t.ok(sync, 'not called synchronously'); sync = false })
  t.notOk(err)
  t.equal(transformed, 0)
  const items: unknown[] = []
  for await (const x of new NothingQueued()) items.push(x)
  t.same(items, [], 'an ordinary consumer sees an empty stream')
})

t.test('pipeline: every other call is the original', async (t) => {
  const out: string[] = []
  const sink = new Transform({ objectMode: true, transform (d: string, _e, next) { out.push(d); next() } })
  await new Promise<void>((resolve, reject) => pipelineBinding(Readable.from(['x', 'y']), sink, (e) => e ? reject(e) : resolve()))
  t.same(out, ['x', 'y'])
})

t.test('slimClient finds what aedes built: shared listeners, no end-of-stream closures, and the client still works', async (t) => {
  const broker = await Aedes.createBroker()
  const accepted = new Promise<Socket>((resolve) => {
    const server = createServer(resolve).listen(0, '127.0.0.1', () => {
      const peer = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1')
      t.teardown(() => { peer.destroy(); server.close(); return new Promise<void>((resolve) => broker.close(() => resolve())) })
      const parser = mqttPacket.parser()
      parser.on('packet', (p) => { packets.push(p.cmd); for (const wake of waiting.splice(0)) wake() })
      peer.on('data', (d: Buffer) => parser.parse(d))
      send = (p) => peer.write(mqttPacket.generate(p as never))
    })
  })
  const packets: string[] = []
  /** Checks re-run on each packet the peer receives. */
  const waiting: Array<() => void> = []
  let send: (p: object) => void = () => {}
  const received = (cmd: string): Promise<void> => new Promise<void>((resolve) => { const check = (): void => { if (packets.includes(cmd)) resolve(); else waiting.push(check) }; check() })
  const conn = await accepted
  const client = broker.handle(conn as never, undefined as never) as unknown as { subscriptions: object, _inboundInflight: { size: number }, _parser: NodeJS.EventEmitter, closed: boolean }
  const bound = (e: NodeJS.EventEmitter, ev: string): string[] => e.listeners(ev).map((l) => l.name).filter((n) => n.startsWith('bound '))
  t.same(bound(conn, 'error'), ['bound emit'], 'aedes binds these listeners (the names slimClient looks for)')
  t.same(bound(conn, 'end'), ['bound close'])
  t.same(bound(client._parser, 'error'), ['bound emit'])
  const finishListeners = conn.listenerCount('finish')
  t.ok(finishListeners > 0, 'and finished() listens for finish')
  slimClient(conn)
  t.same(bound(conn, 'error'), [])
  t.same(bound(conn, 'end'), [])
  t.same(bound(client._parser, 'error'), [])
  t.ok(conn.listenerCount('finish') < finishListeners, 'finished() listeners removed')
  t.same(conn.listeners('close').map((l) => l.name).filter((n) => n === 'closeClient'), ['closeClient'])
  t.equal(Object.getPrototypeOf(Object.getPrototypeOf(client.subscriptions)), null, 'subscriptions inherit no names')
  t.notOk('constructor' in client.subscriptions)
  t.notOk('__proto__' in client.subscriptions)

  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'slim', keepalive: 30 })
  await received('connack')
  // QoS 2 in: the receive window (the lazy Set) is used and released by PUBREL.
  send({ cmd: 'publish', topic: 'q/2', payload: Buffer.from('x'), qos: 2, messageId: 7, retain: false, dup: false })
  await received('pubrec')
  t.equal(client._inboundInflight.size, 1, 'one QoS 2 message awaiting PUBREL')
  send({ cmd: 'pubrel', messageId: 7 })
  await received('pubcomp')
  t.equal(client._inboundInflight.size, 0, 'released by PUBREL')
  const gone = new Promise<void>((resolve) => broker.once('clientDisconnect', () => resolve()))
  conn.destroy()
  await gone
  t.ok(client.closed, 'a destroyed socket closes the client through the shared close listener')
})
