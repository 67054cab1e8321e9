import t from 'tap'
import { PassThrough } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import { guardSocket, type Violation } from '../../broker/mqtt/wire-guard.ts'

const CONNECT = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'g', keepalive: 0 } as never)
const publishRaw = (topic: Buffer): Buffer => Buffer.concat([Buffer.from([0x30, 2 + topic.length + 1, 0, topic.length]), topic, Buffer.from('x')])

/** Feeds `chunks` through a guarded stream, reading after each; returns the violation, if any. */
function feed (chunks: Buffer[]): Violation | null {
  const conn = new PassThrough()
  let violation: Violation | null = null
  guardSocket(conn, { maxConnectPacketSize: 1024, maxPacketSize: 1024 }, (v) => { violation = v })
  for (const c of chunks) {
    if (conn.destroyed) break
    conn.write(c)
    while (conn.read() !== null) { /* drain what the guard lets through */ }
  }
  return violation
}

/** Every way to cut `buf` into two chunks, so a field split across reads is covered. */
function splits (buf: Buffer): Buffer[][] {
  const out: Buffer[][] = []
  for (let i = 1; i < buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)])
  return out
}

t.test('[MQTT-1.5.3-1] an ill-formed UTF-8 PUBLISH topic is a violation, however the bytes are split', async (t) => {
  const bad = Buffer.concat([CONNECT, publishRaw(Buffer.from([0x61, 0xc3, 0x28]))])
  t.equal(feed([bad]), 'bad_utf8', 'in one chunk')
  t.ok(splits(bad).every((c) => feed(c) === 'bad_utf8'), 'in two chunks, at every cut')
  t.equal(feed([Buffer.concat([CONNECT, publishRaw(Buffer.from([0x61, 0xed, 0xa0, 0x80]))])]), 'bad_utf8', 'an encoded surrogate (U+D800) too')
})

t.test('well-formed topics pass, U+FFFD and multi-byte characters included', async (t) => {
  for (const topic of ['a/b', 'caf\u00e9/\ufffd', '\u{1f600}']) {
    const ok = Buffer.concat([CONNECT, publishRaw(Buffer.from(topic)), publishRaw(Buffer.from('next'))])
    t.equal(feed([ok]), null, `${JSON.stringify(topic)} in one chunk`)
    t.ok(splits(ok).every((c) => feed(c) === null), `${JSON.stringify(topic)} at every cut`)
  }
  // The payload of a PUBLISH is not text: bytes that are not UTF-8 there are fine.
  const binary = Buffer.concat([CONNECT, Buffer.from([0x30, 5, 0, 1, 0x61, 0xc3, 0x28])])
  t.equal(feed([binary]), null, 'binary payload accepted')
})
