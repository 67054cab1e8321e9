import t from 'tap'
import { Writable } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { writeSharedQos0 } from '../../broker/mqtt/shared-encoding.ts'

/** A stream that keeps every chunk written to it. */
function sink (): Writable & { bytes(): Buffer, chunks: Buffer[] } {
  const chunks: Buffer[] = []
  const s = new Writable({ write (chunk: Buffer, _enc, cb) { chunks.push(chunk); cb() } }) as Writable & { bytes(): Buffer, chunks: Buffer[] }
  s.chunks = chunks
  s.bytes = () => Buffer.concat(chunks)
  return s
}

const expected = (p: object): Buffer => mqttPacket.generate({ cmd: 'publish', qos: 0, ...p } as never)

t.test('the bytes are those mqtt-packet writes, at every Remaining Length boundary', async (t) => {
  // 2 + topic + payload crosses the 1-, 2- and 3-byte length encodings.
  const sizes = [0, 1, 64, 121, 122, 123, 2048, 2049, 16_378, 16_379, 16_380, 2_097_144, 2_097_145]
  for (const topic of ['a', 'bench/out', 'ünïcødé/€/😀']) {
    for (const size of sizes) {
      const payload = Buffer.alloc(size, size % 251)
      for (const [retain, dup] of [[false, false], [true, false], [false, true], [true, true]]) {
        const s = sink()
        t.equal(writeSharedQos0({ topic, payload, qos: 0, retain, dup }, s), true)
        if (!s.bytes().equals(expected({ topic, payload, retain, dup }))) t.fail(`differs: topic ${topic}, ${size} bytes, retain ${retain}, dup ${dup}`)
      }
    }
  }
  const s = sink()
  writeSharedQos0({ topic: 'no/payload' }, s)
  t.same(s.bytes(), expected({ topic: 'no/payload', payload: Buffer.alloc(0) }), 'a missing payload is an empty one')
})

t.test('one encoding is shared by the deliveries of one publish', async (t) => {
  const payload = Buffer.from('hello')
  const a = sink()
  const b = sink()
  writeSharedQos0({ topic: 'x/y', payload }, a)
  // aedes hands each subscriber its own packet object around the same payload.
  writeSharedQos0({ topic: 'x/y', payload, retain: false }, b)
  t.equal(a.chunks.length, 1, 'one write per delivery')
  t.equal(a.chunks[0].buffer, b.chunks[0].buffer, 'the same encoded bytes')
  t.ok(b.bytes().equals(expected({ topic: 'x/y', payload })))
})

t.test('a different topic, flag or payload is encoded anew', async (t) => {
  const payload = Buffer.from('p')
  const cases = [
    { topic: 't/1', payload },
    { topic: 't/2', payload },
    { topic: 't/2', payload, retain: true },
    { topic: 't/2', payload: Buffer.from('p') },
    { topic: 't/2', payload: Buffer.from('q') },
  ]
  for (const c of cases) {
    const s = sink()
    writeSharedQos0(c, s)
    t.ok(s.bytes().equals(expected(c)), JSON.stringify({ ...c, payload: c.payload.toString() }))
  }
})

t.test('a large payload is written by reference after its header', async (t) => {
  const payload = Buffer.alloc(100_000, 3)
  const s = sink()
  writeSharedQos0({ topic: 'big', payload }, s)
  t.equal(s.chunks.length, 2)
  t.equal(s.chunks[1], payload, 'not copied')
  t.ok(s.bytes().equals(expected({ topic: 'big', payload })))
})

t.test('what it does not encode is left to mqtt-packet', async (t) => {
  const s = sink()
  t.equal(writeSharedQos0({ topic: 'q1', payload: Buffer.from('x'), qos: 1 }, s), undefined, 'QoS 1 needs a packet id per client')
  t.equal(writeSharedQos0({ topic: 'v5', payload: Buffer.from('x') }, s, { protocolVersion: 5 }), undefined, 'MQTT 5 has properties')
  t.equal(writeSharedQos0({ topic: Buffer.from('b') as never, payload: Buffer.from('x') }, s), undefined, 'a Buffer topic')
  t.equal(writeSharedQos0({ topic: 'long', payload: 'text' as never }, s), undefined, 'a string payload')
  t.equal(writeSharedQos0({ topic: 'x'.repeat(70_000), payload: Buffer.from('x') }, s), undefined, 'a topic past 65,535 bytes')
  t.equal(s.chunks.length, 0, 'nothing written')
})

t.test('a destroyed stream is not written to', async (t) => {
  const s = sink()
  s.destroy()
  t.equal(writeSharedQos0({ topic: 'gone', payload: Buffer.from('x') }, s), false)
})
