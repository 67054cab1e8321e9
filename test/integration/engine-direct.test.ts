import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess } from '../helpers/node.ts'
import { close, collect, connect, type Received } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Engine outputs on a cluster node take the direct route (broker/engine-bridge.ts:
// retained store, then the bus) when no stored subscription can match their
// topic, and aedes' whole publish (with the offline queue) when one can. Both
// must deliver what aedes delivered: live subscribers, the retained state for
// a late subscriber, and the queue of a persistent session that is offline.

const dir = mkdtempSync(join(tmpdir(), 'tm-engine-direct-'))
const moduleFile = join(dir, 'module.json')
writeFileSync(moduleFile, JSON.stringify({
  version: 1,
  templates: [{ id: 'Meter', properties: { n: { type: 'integer', min: 0, change: 'on-change' } } }],
  things: [{ id: 'm1', template: 'Meter' }, { id: 'm2', template: 'Meter' }],
  rules: [{ id: 'big', template: 'Meter', when: 'n >= 100', actions: [{ type: 'raiseAlert', alert: 'big', severity: 'warning' }], resetActions: [{ type: 'clearAlert', alert: 'big' }] }],
}))

const redis = await startRedis()
const node = await startNodeProcess({ redis: redis.url, nodeId: 'direct1', args: ['--import', moduleFile] })
t.teardown(async () => { await node.kill('SIGKILL'); await redis.stop() })

const dev = await connect(node.port, { clientId: 'dev' })
const watcher = await connect(node.port, { clientId: 'watcher' })
const seen = collect(watcher)
await watcher.subscribeAsync('things/#', { qos: 1 })
t.teardown(() => close(dev, watcher))
const json = (m: Received): Record<string, unknown> => JSON.parse(m.payload) as Record<string, unknown>
const changes = (list: Received[], thing: string): number[] => list.filter((m) => m.topic === `things/${thing}/changed/n`).map((m) => json(m).value as number)

t.test('live outputs and the retained state, with no stored subscription', async (t) => {
  for (let n = 1; n <= 20; n++) await dev.publishAsync('things/m1/properties/n', String(n), { qos: 1 })
  await dev.publishAsync('things/m1/properties/n', '150', { qos: 1 })
  await waitFor(() => changes(seen, 'm1').length === 21 && seen.some((m) => m.topic === 'things/m1/alerts/big'), 'every change and the alert')
  t.same(changes(seen, 'm1'), [...Array.from({ length: 20 }, (_, i) => i + 1), 150], 'each change once, in order')
  t.ok(seen.filter((m) => m.topic === 'things/m1/changed/n').every((m) => typeof json(m).id === 'string'), 'outputs carry their id')

  // What the direct route stored as retained reaches a subscriber that comes later.
  const late = await connect(node.port, { clientId: 'late' })
  const got = collect(late)
  await late.subscribeAsync(['things/m1/state', 'things/m1/alerts/+'], { qos: 1 })
  await waitFor(() => got.length >= 2, 'retained state and alert')
  const state = got.find((m) => m.topic === 'things/m1/state')
  t.equal(state?.retain, true)
  t.match(state === undefined ? {} : json(state), { thingId: 'm1', properties: { n: { value: 150 } } })
  t.match(got.find((m) => m.topic === 'things/m1/alerts/big'), { retain: true })
  await close(late)
})

t.test('a persistent session offline gets the outputs queued, in order, once', async (t) => {
  const keeper = await connect(node.port, { clientId: 'keeper', clean: false })
  await keeper.subscribeAsync('things/m2/changed/+', { qos: 1 })
  await close(keeper)
  for (let n = 1; n <= 30; n++) await dev.publishAsync('things/m2/properties/n', String(n), { qos: 1 })
  await waitFor(() => changes(seen, 'm2').length === 30, 'the live watcher saw all 30')

  const back = await connect(node.port, { clientId: 'keeper', clean: false })
  const queued = collect(back)
  await waitFor(() => changes(queued, 'm2').length >= 30, 'the queue replayed')
  // Online now: live deliveries are not repeated by the queue.
  await dev.publishAsync('things/m2/properties/n', '31', { qos: 1 })
  await waitFor(() => changes(queued, 'm2').includes(31), 'a live change while connected')
  t.same(changes(queued, 'm2'), Array.from({ length: 31 }, (_, i) => i + 1), 'offline outputs queued in order, each once')
  await close(back)
})

t.test('when the persistent session is gone, its topics go on directly', async (t) => {
  const clean = await connect(node.port, { clientId: 'keeper', clean: true })
  await close(clean)
  const before = changes(seen, 'm2').length
  await dev.publishAsync('things/m2/properties/n', '32', { qos: 1 })
  await waitFor(() => changes(seen, 'm2').length === before + 1, 'the change')
  t.equal(changes(seen, 'm2').at(-1), 32)
})
