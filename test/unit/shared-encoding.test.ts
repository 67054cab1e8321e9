import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { encodePublish as encodeQos0, type Publish as Qos0Publish } from '../../broker/mqtt/shared-encoding.ts'

const expected = (p: object): Buffer => mqttPacket.generate({ cmd: 'publish', qos: 0, ...p } as never)
function bytes (p: Qos0Publish, opts?: { protocolVersion?: number }): Buffer | undefined {
  const e = encodeQos0(p, opts)
  return e === undefined ? undefined : e.payload === null ? e.head : Buffer.concat([e.head, e.payload])
}

t.test('the bytes are those mqtt-packet writes, at every Remaining Length boundary', async (t) => {
  // 2 + topic + payload crosses the 1-, 2- and 3-byte length encodings.
  const sizes = [0, 1, 64, 121, 122, 123, 2048, 2049, 16_378, 16_379, 16_380, 2_097_144, 2_097_145]
  let compared = 0
  for (const topic of ['a', 'bench/out', 'ünïcødé/€/😀']) {
    for (const size of sizes) {
      const payload = Buffer.alloc(size, size % 251)
      for (const [retain, dup] of [[false, false], [true, false], [false, true], [true, true]]) {
        const got = bytes({ topic, payload, qos: 0, retain, dup })
        if (got === undefined || !got.equals(expected({ topic, payload, retain, dup }))) t.fail(`differs: topic ${topic}, ${size} bytes, retain ${retain}, dup ${dup}`)
        else compared++
      }
    }
  }
  t.equal(compared, 3 * sizes.length * 4, 'all equal')
  t.same(bytes({ topic: 'no/payload' }), expected({ topic: 'no/payload', payload: Buffer.alloc(0) }), 'a missing payload is an empty one')
})

t.test('one encoding is shared by the deliveries of one publish', async (t) => {
  const payload = Buffer.from('hello')
  // aedes hands each subscriber its own packet object around the same payload.
  const a = encodeQos0({ topic: 'x/y', payload })
  const b = encodeQos0({ topic: 'x/y', payload, retain: false })
  t.equal(a!.head, b!.head, 'the same Buffer')
  t.equal(a!.payload, null, 'a small payload is inside it')
  t.ok(a!.head.equals(expected({ topic: 'x/y', payload })))
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
  for (const c of cases) t.ok(bytes(c)!.equals(expected(c)), JSON.stringify({ ...c, payload: c.payload.toString() }))
})

t.test('the cache does not outlive the turn', async (t) => {
  const payload = Buffer.from('x')
  const a = encodeQos0({ topic: 'turn', payload })
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.not(encodeQos0({ topic: 'turn', payload })!.head, a!.head, 'encoded again on a later turn')
})

t.test('a large payload is written by reference after its header', async (t) => {
  const payload = Buffer.alloc(100_000, 3)
  const e = encodeQos0({ topic: 'big', payload })!
  t.equal(e.payload, payload, 'not copied')
  t.ok(Buffer.concat([e.head, e.payload!]).equals(expected({ topic: 'big', payload })))
})

t.test('what it does not encode is left to mqtt-packet', async (t) => {
  t.equal(encodeQos0({ topic: 'q1', payload: Buffer.from('x'), qos: 1 }), undefined, 'QoS 1 without a packet id')
  t.equal(encodeQos0({ topic: 'q1', payload: Buffer.from('x'), qos: 1, messageId: 0 }), undefined, 'packet id 0')
  t.equal(encodeQos0({ topic: 'q1', payload: Buffer.from('x'), qos: 2, messageId: 65_536 }), undefined, 'a packet id past 16 bits')
  t.equal(encodeQos0({ topic: 'q3', payload: Buffer.from('x'), qos: 3 }), undefined, 'QoS 3')
  t.equal(encodeQos0({ topic: 'v5', payload: Buffer.from('x') }, { protocolVersion: 5 }), undefined, 'MQTT 5 has properties')
  t.equal(encodeQos0({ topic: Buffer.from('b'), payload: Buffer.from('x') }), undefined, 'a Buffer topic')
  t.equal(encodeQos0({ topic: 'long', payload: 'text' }), undefined, 'a string payload')
  t.equal(encodeQos0({ topic: 'x'.repeat(70_000), payload: Buffer.from('x') }), undefined, 'a topic past 65,535 bytes')
})

t.test('QoS 1 and 2: the bytes mqtt-packet writes, with each delivery\'s own packet id', async (t) => {
  const sizes = [0, 1, 64, 119, 120, 121, 2048, 2049, 16_376, 16_377, 100_000]
  let compared = 0
  for (const topic of ['a', 'bench/q1/3', 'ünïcødé/€/😀']) {
    for (const size of sizes) {
      const payload = Buffer.alloc(size, size % 251)
      for (const qos of [1, 2] as const) {
        for (const [retain, dup] of [[false, false], [true, false], [false, true]]) {
          for (const messageId of [1, 255, 256, 40_000, 65_535]) {
            const got = bytes({ topic, payload, qos, retain, dup, messageId })
            if (got === undefined || !got.equals(expected({ topic, payload, qos, retain, dup, messageId }))) t.fail(`differs: topic ${topic}, ${size} bytes, QoS ${qos}, retain ${retain}, dup ${dup}, id ${messageId}`)
            else compared++
          }
        }
      }
    }
  }
  t.equal(compared, 3 * sizes.length * 2 * 3 * 5, 'all equal')
})

t.test('QoS 1 deliveries of one publish: one Buffer each, none shared, the header encoded once', async (t) => {
  const payload = Buffer.from('fan out')
  const a = encodeQos0({ topic: 'f/1', payload, qos: 1, messageId: 7 })!
  const b = encodeQos0({ topic: 'f/1', payload, qos: 1, messageId: 8 })!
  t.not(a.head, b.head, 'each subscriber its own bytes')
  t.equal(a.payload, null, 'a small payload is inside them')
  t.ok(a.head.equals(expected({ topic: 'f/1', payload, qos: 1, messageId: 7 })))
  t.ok(b.head.equals(expected({ topic: 'f/1', payload, qos: 1, messageId: 8 })), 'the second is not the first with its id')
  // A QoS 0 subscriber of the same publish in between does not spoil either.
  const z = encodeQos0({ topic: 'f/1', payload })!
  const c = encodeQos0({ topic: 'f/1', payload, qos: 1, messageId: 9 })!
  t.ok(z.head.equals(expected({ topic: 'f/1', payload })))
  t.ok(c.head.equals(expected({ topic: 'f/1', payload, qos: 1, messageId: 9 })))
  const big = Buffer.alloc(10_000, 1)
  const d = encodeQos0({ topic: 'f/big', payload: big, qos: 1, messageId: 10 })!
  t.equal(d.payload, big, 'a large payload is written by reference after its header')
  t.ok(Buffer.concat([d.head, d.payload!]).equals(expected({ topic: 'f/big', payload: big, qos: 1, messageId: 10 })))
})
