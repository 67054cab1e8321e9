import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startNodeProcess } from '../helpers/node.ts'
import { close, collect, connect, type Received } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// The thing engine on a standalone node (no Redis): the same topics and
// behaviour as in a cluster, held in memory.

const dir = mkdtempSync(join(tmpdir(), 'tm-engine-sa-'))
const moduleFile = join(dir, 'module.json')
writeFileSync(moduleFile, JSON.stringify({
  version: 1,
  templates: [{
    id: 'Pump',
    properties: {
      temp: { type: 'number', min: -40, max: 200, history: true },
      mode: { type: 'string', enum: ['off', 'auto'], default: 'off' },
      speed: { type: 'integer', min: 0, max: 3600 },
    },
  }],
  things: [{ id: 'p1', template: 'Pump' }, { id: 'p2', template: 'Pump' }],
  rules: [
    { id: 'hot', template: 'Pump', when: 'temp > 100', actions: [{ type: 'raiseAlert', alert: 'overTemp', severity: 'critical', message: '${thing.id} at ${temp}' }, { type: 'emitEvent', event: 'hot', payload: { t: '${temp}' } }], resetActions: [{ type: 'clearAlert', alert: 'overTemp' }] },
    { id: 'failover', thing: 'p1', when: 'mode == "off" && speed == 0', actions: [{ type: 'setProperty', thing: 'p2', property: 'mode', value: 'auto' }] },
    { id: 'beat', thing: 'p2', when: 'true', everySeconds: 1, trigger: 'level', actions: [{ type: 'emitEvent', event: 'beat' }] },
  ],
}))

const node = await startNodeProcess({ args: ['--import', moduleFile] })
t.teardown(async () => { await node.kill('SIGKILL') })

const watcher = await connect(node.port, { clientId: 'watcher' })
const seen = collect(watcher)
await watcher.subscribeAsync('things/#', { qos: 1 })
const dev = await connect(node.port, { clientId: 'device-1' })
t.teardown(() => close(watcher, dev))
const json = (m: Received): Record<string, unknown> => JSON.parse(m.payload) as Record<string, unknown>
const on = (topic: string) => seen.filter((m) => m.topic === topic)

t.test('property writes: state, changed, envelopes with ts and quality', async (t) => {
  await dev.publishAsync('things/p1/properties/temp', '20.5', { qos: 1 })
  await dev.publishAsync('things/p1/properties/temp', JSON.stringify({ value: 21, quality: 'uncertain' }), { qos: 1 })
  await dev.publishAsync('things/p2/properties/temp', JSON.stringify({ value: 5, ts: '2020-01-01T00:00:00Z' }), { qos: 1 })
  await waitFor(() => on('things/p1/changed/temp').length === 2 && on('things/p2/changed/temp').length === 1, 'three changes')
  t.match(json(on('things/p1/changed/temp')[1]!), { property: 'temp', value: 21, quality: 'uncertain' })
  t.match(json(on('things/p2/changed/temp')[0]!), { property: 'temp', value: 5, ts: Date.parse('2020-01-01T00:00:00Z'), quality: 'good' })
  await waitFor(() => on('things/p1/state').some((m) => (json(m).properties as Record<string, { value: unknown }>).temp?.value === 21), 'state')
  t.ok(on('things/p1/state').every((m) => typeof json(m).id === 'string'), 'every output carries an effect id')

  // The retained state reaches a late subscriber.
  const late = await connect(node.port, { clientId: 'late' })
  const got = collect(late)
  await late.subscribeAsync('things/p1/state', { qos: 1 })
  await waitFor(() => got.length > 0, 'retained state')
  t.equal(got[0]!.retain, true)
  t.match(JSON.parse(got[0]!.payload), { thingId: 'p1', properties: { temp: { value: 21, quality: 'uncertain' }, mode: { value: 'off' } } })
  await close(late)
})

t.test('invalid writes are refused with an explanation; the rest carries on', async (t) => {
  const errors = (): Array<Record<string, unknown>> => on('things/p1/errors').map(json)
  await dev.publishAsync('things/p1/properties', JSON.stringify({ speed: 1200, mode: 'turbo', nope: 1, temp: 'hot' }), { qos: 1 })
  await dev.publishAsync('things/p1/properties/speed', '99999', { qos: 1 })
  await dev.publishAsync('things/p1/properties/speed', '{not json', { qos: 1 })
  await waitFor(() => errors().length >= 5, 'five errors')
  const codes = errors().map((e) => `${e.property as string}:${e.code as string}`).sort()
  t.same(codes, ['mode:ENGINE_NOT_IN_ENUM', 'nope:ENGINE_UNKNOWN_PROPERTY', 'speed:ENGINE_BAD_JSON', 'speed:ENGINE_OUT_OF_RANGE', 'temp:ENGINE_TYPE_MISMATCH'])
  t.ok(errors().every((e) => e.client === 'device-1' && typeof e.message === 'string'), 'errors name the writer and explain')
  await waitFor(() => on('things/p1/changed/speed').length === 1, 'the valid part applied')
  t.equal(json(on('things/p1/changed/speed')[0]!).value, 1200)

  await dev.publishAsync('things/ghost/properties/temp', '1', { qos: 1 })
  await waitFor(() => on('things/ghost/errors').length === 1, 'unknown thing')
  t.equal(json(on('things/ghost/errors')[0]!).code, 'ENGINE_UNKNOWN_THING')
})

t.test('rules: alerts retained, events, and writes to another thing', async (t) => {
  await dev.publishAsync('things/p1/properties/temp', '150', { qos: 1 })
  await waitFor(() => on('things/p1/alerts/overTemp').length === 1 && on('things/p1/events/hot').length === 1, 'alert and event')
  const alert = on('things/p1/alerts/overTemp')[0]!
  t.match(json(alert), { transition: 'raised', status: 'active', severity: 'critical', message: 'p1 at 150' })
  t.match(json(on('things/p1/events/hot')[0]!), { event: 'hot', payload: { t: 150 } })
  await dev.publishAsync('things/p1/properties/temp', '30', { qos: 1 })
  await waitFor(() => on('things/p1/alerts/overTemp').length === 2, 'cleared')
  t.match(json(on('things/p1/alerts/overTemp')[1]!), { transition: 'cleared', status: 'cleared' })

  await dev.publishAsync('things/p1/properties/speed', '0', { qos: 1 })
  await waitFor(() => on('things/p2/changed/mode').length === 1, 'p2 mode set by the rule on p1')
  t.equal(json(on('things/p2/changed/mode')[0]!).value, 'auto')
})

t.test('desired values: delta to the device until it reports them', async (t) => {
  const app = await connect(node.port, { clientId: 'app' })
  await app.publishAsync('things/p1/desired/mode', '"auto"', { qos: 1 })
  await waitFor(() => on('things/p1/delta').length === 1, 'delta')
  t.match(json(on('things/p1/delta')[0]!), { version: 1, state: { mode: 'auto' } })
  await app.publishAsync('things/p1/desired/speed', '"fast"', { qos: 1 })
  await waitFor(() => on('things/p1/errors').some((m) => json(m).code === 'ENGINE_TYPE_MISMATCH' && json(m).property === 'speed' && json(m).client === 'app'), 'bad desired refused')
  await dev.publishAsync('things/p1/properties/mode', '"auto"', { qos: 1 })
  await waitFor(() => on('things/p1/delta').length === 2, 'delta cleared')
  t.match(json(on('things/p1/delta')[1]!), { version: 1, state: {} })
  await close(app)
})

t.test('scheduled rules tick', async (t) => {
  await waitFor(() => on('things/p2/events/beat').length >= 2, 'two scheduled evaluations', 5000)
  const ts = on('things/p2/events/beat').map((m) => json(m).ts as number)
  t.ok((ts[1] as number) - (ts[0] as number) >= 1000, 'at most once per period')
})
