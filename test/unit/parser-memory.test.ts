import t from 'tap'
import mqttPacket from 'mqtt-packet'
import { installMemoryPatches } from '../../broker/mqtt/memory-patches.ts'

installMemoryPatches()

type Internals = NodeJS.EventEmitter & { parse(b: Buffer): void, settings: { protocolVersion?: number }, _states: string[] }
const parserOf = (opt?: object): Internals => mqttPacket.parser(opt as never) as unknown as Internals

const connect = (protocolVersion: number, clientId: string): Buffer =>
  mqttPacket.generate({ cmd: 'connect', protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT', protocolVersion, clean: true, clientId, keepalive: 30 } as never)

t.test('parsers share their list of states and, after CONNECT, one settings object per protocol version', async (t) => {
  const a = parserOf()
  const b = parserOf()
  t.equal(a._states, b._states, 'one list of states')
  t.ok(Object.isFrozen(a._states))
  const packets: Array<Record<string, unknown>> = []
  a.on('packet', (p) => packets.push(p))
  b.on('packet', (p) => packets.push(p))
  a.parse(connect(4, 'one'))
  b.parse(connect(4, 'two'))
  t.same(packets.map((p) => p.clientId), ['one', 'two'])
  t.equal(a.settings, b.settings, 'no CONNECT packet kept per parser')
  t.same(a.settings, { protocolVersion: 4 })
  t.not(a.settings, packets[0])
  const v3 = parserOf()
  v3.parse(connect(3, 'three'))
  t.equal(v3.settings.protocolVersion, 3)
})

t.test('a parser made with settings keeps them (the client side: MQTT 5)', async (t) => {
  const settings = { protocolVersion: 5 }
  const p = parserOf(settings)
  t.equal(p.settings, settings)
  const got: Array<Record<string, unknown>> = []
  p.on('packet', (x) => got.push(x))
  p.parse(mqttPacket.generate({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, retain: false, dup: false, properties: { contentType: 'text/plain' } } as never, { protocolVersion: 5 } as never))
  t.equal((got[0].properties as Record<string, unknown>).contentType, 'text/plain', 'MQTT 5 properties parsed')
})

t.test('after an MQTT 5 CONNECT, MQTT 5 packets still parse with their properties', async (t) => {
  const p = parserOf()
  const got: Array<Record<string, unknown>> = []
  p.on('packet', (x) => got.push(x))
  p.parse(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'five', keepalive: 30, properties: { sessionExpiryInterval: 10 } } as never))
  p.parse(mqttPacket.generate({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false, properties: { userProperties: { k: 'v' } } } as never, { protocolVersion: 5 } as never))
  t.equal(p.settings.protocolVersion, 5)
  t.same((got[1].properties as Record<string, unknown>).userProperties, { k: 'v' })
})
