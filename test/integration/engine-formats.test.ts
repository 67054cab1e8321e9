import t from 'tap'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import type { ThingState } from '../../engine/index.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { encodeOutbox } from '../../engine/runtime/formats.ts'
import { startRedis } from '../helpers/redis.ts'

// The stored-format switch (eng:format, lua/format-2.lua) against a real
// redis-server: a cluster that ran the engine before keeps writing format 1
// until the switch says 2; a fresh one starts on 2; logs and outboxes holding
// both formats are read in order; format-2 states skip unchanged heads.

const redis = await startRedis()
t.teardown(() => redis.stop())
const cmd = redis.client()
defineScripts(cmd, ENGINE_LUA_DIR)

function storeOf (cluster: string): { store: RedisStore, keys: ReturnType<typeof createKeys>['engine'] } {
  const keys = createKeys(cluster).engine
  return { keys, store: new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 4, backlogMax: 100, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 10_000 }) }
}
const entry = (n: number) => ({ t: 'a', k: 'w' as const, p: 'x', v: String(n), n, o: 'c|1', d: 0 })
const fieldNames = async (key: string): Promise<string[][]> => (await cmd.xrange(key, '-', '+')).map(([, f]) => f.filter((_, i) => i % 2 === 0))

t.test('a cluster that ran the engine before stays on format 1 until switched; both formats are read in order', async (t) => {
  const { store, keys } = storeOf('upgraded')
  // An older release took leases: the fencing counter exists, no switch.
  await cmd.set(keys.fence, '41')
  await store.beat('b1', [0], new Map())
  t.equal(await cmd.get(keys.format), null, 'no switch written for a cluster with history')
  await store.append(0, entry(1))
  t.same(await fieldNames(keys.logOf(0)), [['t', 'k', 'p', 'v', 'n', 'o', 'd']], 'format 1 entry')

  await cmd.set(keys.format, '2')
  await store.beat('b1', [0], new Map())
  await store.append(0, entry(2))
  t.same((await fieldNames(keys.logOf(0)))[1], ['e2'], 'format 2 entry after the switch')

  const [read] = await store.read(new Map([[0, '']]), 10, 0)
  t.match(read?.entries, [entry(1), entry(2)], 'both entries read, in log order')
})

t.test('a fresh cluster starts on format 2, also for rule writes and the outbox a commit stores', async (t) => {
  const { store, keys } = storeOf('fresh')
  const { held } = await store.beat('b1', [1], new Map())
  t.equal(await cmd.get(keys.format), '2', 'switch set by the first beat')
  const outbox = [
    { topic: 'things/a/changed/x', payload: '{"id":"1:7-0/0.x","value":"q\\"|"}', qos: 1 as const, retain: false },
    { topic: 'things/a/state', payload: '', qos: 1 as const, retain: true, stateRef: { id: '1:7-0/state', thingId: 'a' } },
  ]
  await store.commit({
    partition: 1, token: held.get(1)!, from: '', to: '7-0', states: new Map(), history: [], alerts: [], outbox,
    feedback: [{ partition: 2, entry: { t: 'b', k: 'r', p: 'y', v: '2', n: 5000, o: '', d: 1 } }],
  })
  t.same(await fieldNames(keys.logOf(2)), [['e2']], 'rule write appended in format 2')
  const [fed] = await store.read(new Map([[2, '']]), 10, 0)
  t.match(fed?.entries, [{ t: 'b', k: 'r', p: 'y', v: '2', n: 5000, o: '', d: 1 }], 'and read back')
  const stored = await cmd.lrange(keys.outboxOf(1), 0, -1)
  t.ok(stored[0]?.startsWith('2'), 'outbox batch in format 2')

  // A batch an older release left behind, before the new one.
  await cmd.lpush(keys.outboxOf(1), encodeOutbox(outbox.slice(0, 1), 1))
  t.same((await store.load(1)).outbox, [outbox.slice(0, 1), outbox], 'format 1 and format 2 batches load, in order')
})

t.test('format 2 state: the head is rewritten only when more than seq changed, and the newest seq is loaded from a property field', async (t) => {
  const { store, keys } = storeOf('heads')
  const { held } = await store.beat('b1', [0], new Map())
  const token = held.get(0)!
  const sample = (value: number, ts: number) => ({ value, ts, quality: 'good' as const })
  const s: ThingState = { v: 1, thingId: 'a', seq: 1, properties: { x: { current: sample(1, 10) } }, rules: {}, alerts: {}, shadow: { version: 0, desired: {} } }
  await store.commit({ partition: 0, token, from: '', to: '1-0', states: new Map([['a', s]]), written: new Map([['a', null]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.equal(JSON.parse((await cmd.hget(keys.stateOf(0), 'a'))!).seq, 1, 'first commit writes the head')

  // The owner updates its cached state in place; only x changed.
  s.seq = 2
  s.properties.x = { current: sample(2, 20), counted: sample(2, 20), prev: sample(1, 10), changedAt: 20 }
  await store.commit({ partition: 0, token, from: '1-0', to: '2-0', states: new Map([['a', s]]), written: new Map([['a', new Set(['x'])]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.equal(JSON.parse((await cmd.hget(keys.stateOf(0), 'a'))!).seq, 1, 'head not rewritten')
  t.equal(JSON.parse((await cmd.hget(keys.stateOf(0), 'a/x'))!).seq, 2, 'the property field carries the seq')
  const loaded = (await store.load(0)).states.get('a')
  t.same(loaded, JSON.parse(JSON.stringify(s)), 'loaded whole: seq from the property field, no seq member in the property')
  t.same(await store.getState(0, 'a', ['x']), JSON.parse(JSON.stringify(s)), 'getState too')

  // A seq advance without any property written (a refused write) writes the head.
  s.seq = 3
  await store.commit({ partition: 0, token, from: '2-0', to: '3-0', states: new Map([['a', s]]), written: new Map([['a', new Set<string>()]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.equal(JSON.parse((await cmd.hget(keys.stateOf(0), 'a'))!).seq, 3, 'head written when no property field records the seq')
  t.equal((await store.load(0)).states.get('a')?.seq, 3)

  // Rule memory changed (processInput unsaves the head; a new object is not saved either).
  const s4 = { ...s, seq: 4, rules: { r: { active: true } } }
  await store.commit({ partition: 0, token, from: '3-0', to: '4-0', states: new Map([['a', s4]]), written: new Map([['a', new Set(['x'])]]), history: [], alerts: [], outbox: [], feedback: [] })
  t.same(JSON.parse((await cmd.hget(keys.stateOf(0), 'a'))!).rules, { r: { active: true } }, 'head written when it changed')
})
