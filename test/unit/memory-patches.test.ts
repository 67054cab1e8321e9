import t from 'tap'
import { Duplex, PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { installMemoryPatches } from '../../broker/mqtt/memory-patches.ts'

installMemoryPatches()

const PACKETS = [
  { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'm', keepalive: 30, username: 'u', password: Buffer.from('p') },
  { cmd: 'publish', topic: 'a/b', payload: Buffer.alloc(300, 7), qos: 1, messageId: 513, retain: false, dup: false },
  { cmd: 'subscribe', messageId: 65535, subscriptions: [{ topic: 'x/#', qos: 1 }, { topic: 'y/+', qos: 0 }] },
  { cmd: 'puback', messageId: 1 },
  { cmd: 'pingreq' },
] as const
const wire = Buffer.concat(PACKETS.map((p) => mqttPacket.generate(p as never)))

function parseChunks (chunks: Buffer[]): Array<Record<string, unknown>> {
  const parser = mqttPacket.parser()
  const out: Array<Record<string, unknown>> = []
  parser.on('packet', (p) => out.push(p as unknown as Record<string, unknown>))
  parser.on('error', (err) => { throw err })
  for (const c of chunks) parser.parse(c)
  return out
}

t.test('the parser keeps its bytes in a plain BufferList, not a stream', async (t) => {
  const parser = mqttPacket.parser() as unknown as { _list: object }
  t.notOk(parser._list instanceof Duplex, 'no Duplex per connection')
  t.equal(parser._list.constructor.name, 'BufferList')
})

t.test('packets split at every byte boundary parse as before', async (t) => {
  const whole = parseChunks([wire])
  t.same(whole.map((p) => p.cmd), PACKETS.map((p) => p.cmd))
  t.equal((whole[1].payload as Buffer).length, 300)
  t.equal(whole[1].messageId, 513)
  t.equal(whole[2].messageId, 65535)
  for (let i = 1; i < wire.length; i += 7) {
    const split = parseChunks([wire.subarray(0, i), wire.subarray(i)])
    t.same(split, whole, `split at ${i}`)
  }
  t.same(parseChunks([...wire].map((b) => Buffer.from([b]))), whole, 'one byte at a time')
})

t.test('a parser error resets to a working parser', async (t) => {
  const parser = mqttPacket.parser()
  const got: string[] = []
  let errors = 0
  parser.on('packet', (p) => got.push(p.cmd))
  parser.on('error', () => { errors++ })
  parser.parse(Buffer.from([0x36, 0x00])) // PUBLISH with QoS 3
  parser.parse(mqttPacket.generate({ cmd: 'pingreq' } as never))
  t.equal(errors, 1)
  t.same(got, ['pingreq'])
})

t.test('without the number cache, writeToStream writes the same bytes', async (t) => {
  t.equal(mqttPacket.writeToStream.cacheNumbers, false)
  for (const p of PACKETS) {
    const s = new PassThrough()
    const chunks: Buffer[] = []
    s.on('data', (d: Buffer) => chunks.push(d))
    mqttPacket.writeToStream(p as never, s)
    await new Promise((resolve) => setImmediate(resolve))
    t.same(Buffer.concat(chunks), mqttPacket.generate(p as never), p.cmd)
  }
})
