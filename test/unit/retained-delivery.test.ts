import t from 'tap'
import { EventEmitter } from 'node:events'
import { Writable } from 'node:stream'
import { createRequire } from 'node:module'
import { RetainedDelivery, type RetainedBroker, type RetainedClient, type RetainedPublish, type StoredRetained } from '../../broker/mqtt/retained-delivery.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { parser(o: object): EventEmitter & { parse(b: Buffer): void } }

/** A socket whose reader can be stopped: writes wait until release(). */
class Sink extends Writable {
  readonly chunks: Buffer[] = []
  private held: Array<() => void> = []
  stuck = false
  constructor () { super({ highWaterMark: 1024 }) }
  override _write (chunk: Buffer, _enc: string, cb: () => void): void {
    this.chunks.push(chunk)
    if (this.stuck) this.held.push(cb); else cb()
  }

  release (): void { this.stuck = false; for (const cb of this.held.splice(0)) cb() }
  packets (): Array<Record<string, unknown>> {
    const out: Array<Record<string, unknown>> = []
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    parser.on('packet', (p: Record<string, unknown>) => out.push(p))
    parser.parse(Buffer.concat(this.chunks))
    return out
  }
}

interface Setup { broker: EventEmitter & RetainedBroker, client: RetainedClient & { drainWaits: number, version?: number }, sink: Sink }

function setup (authorize: (p: RetainedPublish) => RetainedPublish | null = (p) => p): Setup {
  const broker = new EventEmitter() as EventEmitter & RetainedBroker
  broker.authorizeForward = (_c, p) => authorize(p)
  const sink = new Sink()
  const client = {
    id: 'c1', conn: sink, closed: false, connected: true, connecting: false, _nextId: 65534, broker, drainWaits: 0,
    waitForDrain () { client.drainWaits++ },
    emit () { return true },
  }
  return { broker, client, sink }
}

const stored = (topic: string, qos: 0 | 1 | 2 = 1, size = 10): StoredRetained => ({ topic, payload: Buffer.alloc(size, 'p'), qos })
const turns = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve)) }

t.test('a request is claimed only right after the subscribe that asks for exactly its filters', async (t) => {
  const { broker, client } = setup()
  const d = new RetainedDelivery(broker, async function * () { /* nothing stored */ })
  t.notOk(d.claim(['a/#']), 'no subscribe: aedes sends (the admin read path)')
  broker.emit('subscribe', [{ topic: 'a/#', qos: 1 }, { topic: 'denied', qos: 128 }], client)
  t.notOk(d.claim(['a/#', 'denied']), 'a refused filter has no retained messages to send')
  broker.emit('subscribe', [{ topic: 'a/#', qos: 1 }, { topic: 'denied', qos: 128 }], client)
  t.ok(d.claim(['a/#']), 'the granted filters: claimed')
  t.notOk(d.claim(['a/#']), 'claimed once')
  broker.emit('subscribe', [{ topic: 'a/#', qos: 1 }], client)
  await Promise.resolve()
  t.notOk(d.claim(['a/#']), 'not after the synchronous run of that subscribe')
})

t.test('each message: retain flag, the hook\'s ACL and QoS, packet ids that wrap', async (t) => {
  const { broker, client, sink } = setup((p) => p.topic === 'deny' ? null : p.topic === 'down' ? { ...p, qos: 0 } : p)
  const d = new RetainedDelivery(broker, async function * () {
    yield [stored('a', 1), stored('deny', 1), stored('down', 2)]
    yield [stored('b', 2), stored('c', 0), stored('d', 1)]
  })
  broker.emit('subscribe', [{ topic: '#', qos: 2 }], client)
  t.ok(d.claim(['#']))
  await turns(5)
  const got = sink.packets().map((p) => ({ topic: p.topic, qos: p.qos, retain: p.retain, messageId: p.messageId }))
  t.same(got, [
    { topic: 'a', qos: 1, retain: true, messageId: 65534 },
    { topic: 'down', qos: 0, retain: true, messageId: undefined },
    { topic: 'b', qos: 2, retain: true, messageId: 65535 },
    { topic: 'c', qos: 0, retain: true, messageId: undefined },
    { topic: 'd', qos: 1, retain: true, messageId: 1 },
  ])
})

t.test('an MQTT 5 client: packet by packet through mqtt-packet', async (t) => {
  const { broker, client, sink } = setup()
  client.version = 5
  const d = new RetainedDelivery(broker, async function * () { yield [stored('a', 1), stored('b', 0)] })
  broker.emit('subscribe', [{ topic: '#', qos: 1 }], client)
  d.claim(['#'])
  await turns(5)
  t.same(sink.packets().map((p) => [p.topic, p.qos, p.retain]), [['a', 1, true], ['b', 0, true]])
})

t.test('a reader that stops: writing stops at the socket\'s limit, at most two batches are read, all follow once it drains', async (t) => {
  const { broker, client, sink } = setup()
  sink.stuck = true
  let pulled = 0
  const d = new RetainedDelivery(broker, async function * () {
    for (let b = 0; b < 20; b++) {
      pulled++
      yield Array.from({ length: 100 }, (_, i) => stored(`t/${b}/${i}`, 0, 100))
    }
  })
  broker.emit('subscribe', [{ topic: 't/#', qos: 0 }], client)
  d.claim(['t/#'])
  await turns(20)
  // One batch here is 11 KB, under a chunk (64 KiB): written at once, then nothing more until 'drain'.
  t.ok(sink.writableLength < 1024 + 64 * 1024, `unsent bytes: at most a chunk past the socket's high-water mark (${sink.writableLength})`)
  const written = sink.writableLength
  await turns(10)
  t.equal(sink.writableLength, written, 'nothing more written while the socket stays full')
  t.ok(pulled <= 2, `batches read while blocked: ${pulled}`)
  t.ok(client.drainWaits >= 1, 'aedes\' waitForDrain armed (the drain timeout)')
  sink.release()
  await turns(200)
  const topics = sink.packets().map((p) => p.topic)
  t.equal(topics.length, 2000, 'every message once it drains')
  t.equal(new Set(topics).size, 2000)
})

t.test('a connection that closes ends the reads', async (t) => {
  const { broker, client, sink } = setup()
  sink.stuck = true
  let finished = false
  let pulled = 0
  const d = new RetainedDelivery(broker, async function * () {
    try {
      for (let b = 0; b < 20; b++) { pulled++; yield Array.from({ length: 100 }, (_, i) => stored(`t/${b}/${i}`, 0, 100)) }
    } finally { finished = true }
  })
  broker.emit('subscribe', [{ topic: 't/#', qos: 0 }], client)
  d.claim(['t/#'])
  await turns(10)
  client.closed = true
  sink.destroy()
  await turns(10)
  t.ok(finished, 'the source was closed')
  t.ok(pulled <= 2, `no batch read after the close (${pulled})`)
})
