import t from 'tap'
import { decodeFrame, encodeFrame, type BusPacket } from '../../broker/cluster/codec.ts'
import { retainedFromFrame } from '../../broker/persistence/retained-frame.ts'

const packet = (over: Partial<BusPacket>): BusPacket => ({ topic: 't', payload: Buffer.from('p'), qos: 0, retain: true, dup: false, brokerId: '', brokerCounter: 0, ...over })

t.test('topic, payload and QoS as decodeFrame reads them, whatever the other fields hold', async (t) => {
  const cases: BusPacket[] = [
    packet({}),
    packet({ topic: 'a/b/c', payload: Buffer.alloc(0), qos: 1 }),
    packet({ topic: 'ünï/cödé/€', payload: Buffer.from([0, 1, 2, 255]), qos: 2, brokerId: 'b1~abc', brokerCounter: 12345, clientId: 'client-ü' }),
    packet({ topic: 'x'.repeat(70_000 >> 1), payload: Buffer.alloc(100_000, 7), qos: 1, brokerId: 'b'.repeat(300), clientId: 'c'.repeat(300) }),
    packet({ topic: 'line\nbreak', dup: true, retain: false }),
  ]
  for (const p of cases) {
    for (const origin of ['', 'n1~origin']) {
      const frame = encodeFrame(origin, p)
      const full = decodeFrame(frame)!.packet
      const got = retainedFromFrame(frame)
      t.same(got, { topic: full.topic, payload: full.payload, qos: full.qos, topicBytes: Buffer.byteLength(full.topic) }, `${p.topic.slice(0, 20)} (origin '${origin}')`)
      t.ok(got!.payload.equals(p.payload), 'payload bytes')
    }
  }
})

t.test('another version or a truncated frame: null, as decodeFrame', async (t) => {
  const frame = encodeFrame('o', packet({ topic: 'a/b', payload: Buffer.from('payload'), clientId: 'cid' }))
  const other = Buffer.from(frame)
  other[0] = 2
  t.equal(retainedFromFrame(other), null, 'unknown version')
  // Cuts inside the strings (the payload may be empty: a cut after the clientId is a valid frame).
  const payloadAt = frame.length - 'payload'.length
  for (let n = 0; n < payloadAt; n++) {
    t.equal(decodeFrame(frame.subarray(0, n)), null)
    t.equal(retainedFromFrame(frame.subarray(0, n)), null, `cut at ${n}`)
  }
  t.same(retainedFromFrame(frame.subarray(0, payloadAt)), { topic: 'a/b', payload: Buffer.alloc(0), qos: 0, topicBytes: 3 }, 'cut before the payload: an empty payload')
})
