import t from 'tap'
import { decodeFrame, encodeFrame, BUS_FRAME_VERSION } from '../../broker/cluster/codec.ts'

t.test('a frame round-trips every field, binary payload untouched', async (t) => {
  const payload = Buffer.from([0, 1, 2, 255, 10, 13])
  const buf = encodeFrame('node1~ab', { topic: 'ä/[x]/*', payload, qos: 2, retain: true, dup: false, brokerId: 'node2~cd', brokerCounter: 2 ** 40 + 3, clientId: 'dev-1' })
  const f = decodeFrame(buf)!
  t.equal(f.origin, 'node1~ab')
  t.same({ ...f.packet, payload: [...f.packet.payload] }, { topic: 'ä/[x]/*', payload: [...payload], qos: 2, retain: true, dup: false, brokerId: 'node2~cd', brokerCounter: 2 ** 40 + 3, clientId: 'dev-1' })
})

t.test('frames of another version or truncated are refused, not misread', async (t) => {
  const buf = encodeFrame('o', { topic: 't', payload: Buffer.from('p'), qos: 0, retain: false, dup: false, brokerId: 'b', brokerCounter: 1 })
  const other = Buffer.from(buf); other[0] = BUS_FRAME_VERSION + 1
  t.equal(decodeFrame(other), null)
  for (let cut = 0; cut < 20; cut++) t.equal(decodeFrame(buf.subarray(0, cut)), null, `cut at ${cut}`)
})

t.test('long and multi-byte strings keep their byte lengths (u16 high byte used), empty ones stay empty', async (t) => {
  const topic = 'ü'.repeat(300) + '/😀'
  const clientId = 'c'.repeat(70_000 >> 8)
  const buf = encodeFrame('', { topic, payload: 'text', qos: 1, retain: false, dup: true, brokerId: 'b~1', brokerCounter: 7, clientId } as never)
  const f = decodeFrame(buf)!
  t.equal(f.origin, '')
  t.equal(f.packet.topic, topic)
  t.equal(f.packet.clientId, clientId)
  t.equal(f.packet.payload.toString(), 'text', 'a string payload is encoded as UTF-8')
  t.equal(buf.length, 18 + 3 + Buffer.byteLength(topic) + clientId.length + 4, 'no byte more than the fields')
  const bare = decodeFrame(encodeFrame('', { topic: 't', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false, brokerId: '', brokerCounter: 0 }))!
  t.equal(bare.packet.clientId, undefined, 'no client id')
  t.equal(bare.packet.brokerId, '')
})
