import t from 'tap'
import { createRequire } from 'node:module'
import { encodePublishes, publishLength, type EncodablePublish } from '../../broker/mqtt/publish-encoding.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }

t.test('the bytes of mqtt-packet, at every length-field boundary, QoS and flag', async (t) => {
  const packets: EncodablePublish[] = []
  // Remaining Length 127/128, 16,383/16,384 and 2,097,151/2,097,152 bytes cross the variable-length sizes.
  for (const remaining of [10, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
    for (const qos of [0, 1, 2] as const) {
      const topic = 'ä/t'
      const payload = Buffer.alloc(remaining - 2 - Buffer.byteLength(topic) - (qos > 0 ? 2 : 0), 'x')
      packets.push({ topic, payload, qos, retain: qos !== 1, dup: qos === 2, messageId: qos > 0 ? 65535 - qos : undefined })
    }
  }
  packets.push({ topic: 'empty', payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })
  const topicBytes = packets.map((p) => Buffer.byteLength(p.topic))
  const lengths = packets.map((p, i) => publishLength(topicBytes[i], p))
  const expected = packets.map((p) => mqttPacket.generate({ cmd: 'publish', ...p }))
  t.same(lengths, expected.map((b) => b.length), 'lengths')
  const all = encodePublishes(packets, topicBytes, lengths.reduce((a, b) => a + b, 0))
  t.ok(all.equals(Buffer.concat(expected)), 'bytes')
})

t.test('what MQTT cannot carry is refused', async (t) => {
  t.equal(publishLength(65_536, { topic: '', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false }), -1, 'topic over 65,535 bytes')
  t.equal(publishLength(1, { topic: 'a', payload: { length: 268_435_455 } as Buffer, qos: 0, retain: false, dup: false }), -1, 'packet over 256 MB')
})
