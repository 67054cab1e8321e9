import t from 'tap'
import { createRequire } from 'node:module'
import { PassThrough } from 'node:stream'

const require = createRequire(import.meta.url)

// Before mqtt-packet is loaded: every logger made by the real `debug` counts its calls.
const packetMain = require.resolve('mqtt-packet')
const debugPath = createRequire(packetMain).resolve('debug')
type DebugFactory = ((namespace: string) => (...args: unknown[]) => void) & { enabled(namespace: string): boolean }
const real = require(debugPath) as DebugFactory
const calls: Record<string, number> = {}
const spy = Object.assign((namespace: string) => {
  const d = real(namespace)
  return (...args: unknown[]) => { calls[namespace] = (calls[namespace] ?? 0) + 1; d(...args) }
}, { enabled: (namespace: string) => real.enabled(namespace) })
require.cache[debugPath]!.exports = spy

t.test('mqtt-packet loaded through the patch never calls its debug loggers', async (t) => {
  t.equal(require.cache[packetMain], undefined, 'mqtt-packet not loaded before the patch')
  const { quietMqttPacketDebug } = await import('../../broker/mqtt/quiet-debug.ts')
  t.equal(quietMqttPacketDebug(), true)
  const mqtt = require('mqtt-packet') as { parser(): { parse(b: Buffer): number, on(e: string, f: (p: { topic: string }) => void): void }, writeToStream(p: object, s: NodeJS.WritableStream): boolean }
  const out = new PassThrough()
  const chunks: Buffer[] = []
  out.on('data', (c: Buffer) => chunks.push(c))
  mqtt.writeToStream({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false }, out)
  await new Promise((resolve) => setImmediate(resolve))
  const parser = mqtt.parser()
  const topics: string[] = []
  parser.on('packet', (p) => topics.push(p.topic))
  parser.parse(Buffer.concat(chunks))
  t.same(topics, ['a/b'], 'wire unchanged')
  t.same(calls, {}, 'no debug call')
  // The real `debug` is back for everyone else.
  t.equal(require(debugPath), spy)
})
