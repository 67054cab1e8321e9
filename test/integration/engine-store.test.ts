import t from 'tap'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import type { ThingState } from '../../engine/index.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { startRedis } from '../helpers/redis.ts'

// RedisStore against a real redis-server: a thing's state is stored as one
// field for the rest and one field per property, and a commit writes only
// the properties the batch says it replaced (processBatch's `written`).

const redis = await startRedis()
t.teardown(() => redis.stop())
const cmd = redis.client()
defineScripts(cmd, ENGINE_LUA_DIR)
const keys = createKeys('storetest').engine
const store = new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 4, backlogMax: 100, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 10_000 })

const sample = (value: number, ts: number) => ({ value, ts, quality: 'good' as const })
function state (seq: number, properties: ThingState['properties']): ThingState {
  return { v: 1, thingId: 'a', seq, properties, rules: { r: { active: seq % 2 === 0, lastEvalAt: seq } }, alerts: {}, shadow: { version: 0, desired: {} } }
}
const roundTrip = (s: ThingState): ThingState => JSON.parse(JSON.stringify(s)) as ThingState

t.test('per-property state fields: written when changed, removed when gone, loaded back whole', async (t) => {
  const { held } = await store.beat('b1', [0], new Map())
  const token = held.get(0)
  t.type(token, 'number', 'lease of partition 0 taken')
  const x = { current: sample(1, 10), counted: sample(1, 10), changedAt: 10 }
  const s1 = state(1, { x, y: { current: sample(2, 11) }, z: { current: sample(3, 12) } })
  await store.commit({ partition: 0, token: token!, from: '', to: '1-0', states: new Map([['a', s1]]), written: new Map([['a', null]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.same((await store.load(0)).states.get('a'), roundTrip(s1), 'first commit: every property written')
  t.same(await store.getState(0, 'a', ['x', 'y', 'z']), roundTrip(s1), 'getState assembles the same state')

  // A marker in x's field shows whether the next commit rewrites it.
  await cmd.hset(keys.stateOf(0), 'a/x', JSON.stringify({ current: sample(99, 10) }))
  const s2 = state(2, { x, y: { current: sample(5, 20), counted: sample(5, 20), prev: sample(2, 11), changedAt: 20 } })
  await store.commit({ partition: 0, token: token!, from: '1-0', to: '2-0', states: new Map([['a', s2]]), written: new Map([['a', new Set(['y'])]]), removed: new Map([['a', ['z']]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.same(await cmd.hkeys(keys.stateOf(0)).then((k) => k.sort()), ['a', 'a/x', 'a/y'], 'the removed property is deleted')
  const loaded = (await store.load(0)).states.get('a')!
  t.same(loaded.properties.y, roundTrip(s2).properties.y, 'the changed property is written')
  t.equal(loaded.properties.x?.current.value, 99, 'the unchanged property is not rewritten')
  t.same({ ...loaded, properties: {} }, { ...roundTrip(s2), properties: {} }, 'seq, rule memory and the rest are written')
})

t.test('a state stored whole (previous release) loads, and its properties stay the base', async (t) => {
  const old = state(7, { x: { current: sample(4, 30) } })
  await cmd.hset(keys.stateOf(1), 'a', JSON.stringify(old))
  t.same((await store.load(1)).states.get('a'), roundTrip(old))
  await cmd.hset(keys.stateOf(1), 'a/y', JSON.stringify({ current: sample(6, 31) }))
  t.same((await store.load(1)).states.get('a')?.properties, { x: { current: sample(4, 30) }, y: { current: sample(6, 31) } }, 'a property field overrides or adds to it')
})

t.test('a batch of appends: one script call, in order, full logs refused', async (t) => {
  const small = new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 4, backlogMax: 2, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 10_000 })
  const e = (n: number) => ({ t: 'a', k: 'w' as const, p: 'x', v: String(n), n, o: 'c', d: 0 })
  const results = await Promise.allSettled([small.append(2, e(1)), small.append(3, e(2)), small.append(2, e(3)), small.append(2, e(4))])
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected'], 'the third write to a log of 2 is refused')
  t.match((results[3] as PromiseRejectedResult).reason, { code: 'ENGINE_BACKLOG_FULL' })
  const entries = await cmd.xrange(keys.logOf(2), '-', '+')
  t.same(entries.map(([, f]) => f[7]), ['1', '3'], 'appended in call order')
})

t.test('a commit with alerts, history, rule writes to other partitions and an outbox: commit.lua writes every part where the store reads it back', async (t) => {
  const aged = new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 4, backlogMax: 100, historyMax: 10, historyMaxAgeMs: 1000, leaseMs: 10_000 })
  const { held } = await aged.beat('b1', [3], new Map())
  const token = held.get(3)!
  const s = state(1, { x: { current: sample(1, 5000) } })
  const record = { name: 'hot', status: 'active' as const, severity: 'warning' as const, raisedAt: 5000, occurrences: 1, ruleId: 'r' }
  const outbox = [{ topic: 'things/a/changed/x', payload: '{"value":1}', qos: 1 as const, retain: false }]
  await aged.commit({
    partition: 3, token, from: '', to: '7-0',
    states: new Map([['a', s]]), written: new Map([['a', null]]),
    alerts: [{ thingId: 'a', alert: 'hot', record }],
    history: [{ thingId: 'a', property: 'x', ts: 1000, value: 0, quality: 'good' }, { thingId: 'a', property: 'x', ts: 5000, value: 1, quality: 'uncertain' }],
    feedback: [{ partition: 1, entry: { t: 'b', k: 'r', p: 'y', v: '2', n: 5000, o: '', d: 1 } }],
    outbox,
  })
  t.same(JSON.parse((await cmd.hget(keys.alerts, 'a/hot'))!), record, 'alert index')
  // The age cap (MINID 5000 - 1000) trims the older point.
  const hist = await aged.history('a', 'x', 0, Number.POSITIVE_INFINITY, 10)
  t.same(hist, [{ ts: 5000, value: 1, quality: 'uncertain' }], 'history appended, aged out by the last point')
  const fed = await aged.read(new Map([[1, '']]), 10, 0)
  t.match(fed, [{ partition: 1, entries: [{ t: 'b', k: 'r', p: 'y', v: '2', n: 5000, o: '', d: 1 }] }], 'the rule write is an entry of the target partition log')
  const loaded = await aged.load(3)
  t.same(loaded.outbox, [outbox], 'outbox batch')
  t.equal(loaded.checkpoint, '7-0', 'checkpoint')
  t.same(loaded.states.get('a'), roundTrip(s), 'state')
})
