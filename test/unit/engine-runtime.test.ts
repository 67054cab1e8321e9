import t from 'tap'
import { Definitions, partitionOf, validateModule } from '../../engine/index.ts'
import { processBatch, renderState, type CachedState } from '../../engine/runtime/batch.ts'
import { decodeEntry, encodeEntry, toInput, type LogEntry } from '../../engine/runtime/entries.ts'
import { compareIds, scheduledThings } from '../../engine/runtime/engine.ts'
import { planBeat } from '../../engine/runtime/owner.ts'
import { parseInbound, topics } from '../../engine/runtime/topics.ts'

function defs (): Definitions {
  const v = validateModule({
    version: 1,
    templates: [{ id: 'T', properties: { n: { type: 'integer', history: true, change: 'on-change' }, mode: { type: 'string', enum: ['a', 'b'] } } }],
    things: [{ id: 'x', template: 'T' }, { id: 'y', template: 'T' }],
    rules: [
      { id: 'ten', template: 'T', when: 'n >= 10', actions: [{ type: 'publish', topic: 'out/${thing.id}', payload: { n: '${n}' } }, { type: 'emitEvent', event: 'big' }] },
      { id: 'copy', thing: 'x', when: 'n == 5', actions: [{ type: 'setProperty', thing: 'y', property: 'mode', value: 'b' }] },
      { id: 'sched', thing: 'y', when: 'true', everySeconds: 5, actions: [] },
    ],
  })
  if (!v.ok) throw new Error(JSON.stringify(v.problems))
  return v.definitions
}

const entry = (id: string, t: string, p: string, v: string, n = 1000, k: LogEntry['k'] = 'w'): LogEntry => ({ id, t, k, p, v, n, o: 'dev', d: 0 })

t.test('topics: built and parsed in one place', async (t) => {
  t.equal(topics.state('x'), 'things/x/state')
  t.equal(topics.changed('x', 'n'), 'things/x/changed/n')
  t.same(parseInbound('things/x/properties/n'), { kind: 'report', thingId: 'x', property: 'n' })
  t.same(parseInbound('things/x/properties'), { kind: 'report', thingId: 'x' })
  t.same(parseInbound('things/x/desired/n'), { kind: 'desired', thingId: 'x', property: 'n' })
  for (const other of ['things/x/state', 'things/x/changed/n', 'things//properties', 'things/x/properties/', 'things/x/properties/a/b', 'other/x/properties']) {
    t.equal(parseInbound(other), undefined, `${other} is not an engine input`)
  }
})

t.test('entries: encode/decode round trip and inputs', async (t) => {
  const e = { t: 'x', k: 'w' as const, p: 'n', v: '5', n: 123, o: 'c1', d: 0 }
  t.same(decodeEntry('1-0', encodeEntry(e)), { id: '1-0', ...e })
  t.equal(decodeEntry('1-0', ['t', 'x', 'k', 'bogus']), undefined, 'unknown kind from another release')
  t.same(decodeEntry('1-0', ['k', 'w', 't', 'x', 'v', '5', 'n', '123', 'p', 'n', 'o', 'c1', 'd', '0']), { id: '1-0', ...e }, 'fields in another order decode the same')
  t.equal(decodeEntry('1-0', encodeEntry({ ...e, k: 'bogus' as never })), undefined, 'unknown kind, fields in order')
  t.same(toInput(e), { input: { type: 'write', source: 'device', property: 'n', payload: '5' } })
  t.same(toInput({ ...e, k: 'r', v: '{"value":1}', d: 2 }), { input: { type: 'write', source: 'rule', depth: 2, property: 'n', payload: { value: { value: 1 } } } }, 'rule values are wrapped, so an envelope-like json value is stored as is')
  t.same(toInput({ ...e, k: 'd', p: '', v: '{"mode":"a"}' }), { input: { type: 'setDesired', patch: { mode: 'a' } } })
  t.match(toInput({ ...e, k: 'd', p: '', v: '[1]' }), { error: { code: 'ENGINE_BAD_WRITE' } })
  t.match(toInput({ ...e, k: 'd', v: '{' }), { error: { code: 'ENGINE_BAD_JSON' } })
})

t.test('processBatch: deterministic, ids unique, state published once per thing', async (t) => {
  const d = defs()
  const entries = [
    entry('1-0', 'x', 'n', '5', 1000),
    entry('2-0', 'x', 'n', '12', 1001),
    entry('3-0', 'x', 'mode', '"zzz"', 1002),
    entry('4-0', 'ghost', 'n', '1', 1003),
    entry('5-0', 'y', '', '{"n": 3, "mode": "a"}', 1004),
  ]
  const run = (): ReturnType<typeof processBatch> => processBatch({ partition: 7, defs: d, partitions: 64, cache: new Map<string, CachedState>() }, entries)
  const a = run()
  const b = run()
  t.same(a, b, 'same entries from the same states: same result (replay after failover)')
  const published = a.outbox.map((m) => renderState(m, (id) => a.states.get(id))!)
  const ids = published.map((m) => (JSON.parse(m.payload) as { id?: string, effectId?: string }).id ?? (JSON.parse(m.payload) as { effectId?: string }).effectId)
  t.equal(new Set(ids).size, ids.length, 'every output has its own id')
  t.ok(ids.every((id) => typeof id === 'string' && id.startsWith('7:')), 'ids name the partition')
  t.equal(a.outbox.filter((m) => m.topic === 'things/x/state').length, 1, 'x state once for the batch')
  t.equal(a.outbox.filter((m) => m.topic === 'things/x/changed/n').length, 2)
  t.match(JSON.parse(a.outbox.find((m) => m.topic === 'things/x/errors' && m.payload.includes('ENGINE_NOT_IN_ENUM'))!.payload), { code: 'ENGINE_NOT_IN_ENUM', property: 'mode', client: 'dev', entry: '7:3-0' })
  t.match(JSON.parse(a.outbox.find((m) => m.topic === 'things/ghost/errors')!.payload), { code: 'ENGINE_UNKNOWN_THING' })
  t.same(a.outbox.filter((m) => m.topic === 'out/x').map((m) => JSON.parse(m.payload)), [{ n: 12, effectId: '7:2-0/1' }], 'rule publish carries the effect id')
  t.same(a.history.map((h) => [h.thingId, h.value]), [['x', 5], ['x', 12], ['y', 3]], 'history for properties with history')
  t.same(a.feedback, [{ partition: partitionOf('y', 64), entry: { t: 'y', k: 'r', p: 'mode', v: '"b"', n: 1000, o: '', d: 1 } }], 'setProperty becomes an entry in the target partition log, with the source time')
  t.same([...a.states.keys()].sort(), ['x', 'y'])
  t.equal(a.states.get('x')?.seq, 3)
  const xState = a.outbox.find((m) => m.topic === 'things/x/state')!
  t.same({ payload: xState.payload, stateRef: xState.stateRef }, { payload: '', stateRef: { id: '7:2-0/state', thingId: 'x' } }, 'the outbox keeps a reference to the state, not its text')
  t.match(JSON.parse(published[a.outbox.indexOf(xState)]!.payload), { id: '7:2-0/state', thingId: 'x', seq: 3, properties: { n: { value: 12 } } }, 'rendered from the batch state when published')
  t.equal(renderState(xState, () => undefined), undefined, 'a thing without state publishes no state')
})

t.test('processBatch: states updated in place; a batch keeps what it wrote and the state it publishes', async (t) => {
  const d = defs()
  const cache = new Map<string, CachedState>()
  const ctx = { partition: 0, defs: d, partitions: 64, cache }
  const a = processBatch(ctx, [entry('1-0', 'x', 'n', '3', 1000), entry('2-0', 'x', 'mode', '"a"', 1001)])
  t.equal(a.written.get('x'), null, 'a thing without state: every property is written')
  const b = processBatch(ctx, [entry('3-0', 'x', 'n', '4', 1002)])
  t.same([...b.written.get('x')!], ['n'], 'then only what the batch replaced')
  t.equal(b.states.get('x'), a.states.get('x'), 'one state object per thing, updated in place')
  const first = a.outbox.find((m) => m.topic === 'things/x/state')!
  t.match(JSON.parse(renderState(first, (id) => a.states.get(id), a.statePayloads)!.payload), { id: '0:2-0/state', seq: 2, properties: { n: { value: 3 }, mode: { value: 'a' } } },
    'the first batch, published after the second ran, shows its own state')
  const d2 = d.apply([{ op: 'deleteRule', id: 'copy' }, { op: 'putTemplate', template: { id: 'T', properties: { n: { type: 'integer', history: true, change: 'on-change' }, extra: { type: 'number', default: 7 } } } }])
  const c = processBatch({ ...ctx, defs: d2 }, [entry('4-0', 'x', 'n', '5', 1003)])
  t.same([...c.written.get('x')!].sort(), ['extra', 'n'], 'a definitions change writes the new default')
  t.same(c.removed.get('x'), ['mode'], 'and removes the property that went')
})

t.test('processBatch: a refused write republishes no state', async (t) => {
  const d = defs()
  const r = processBatch({ partition: 0, defs: d, partitions: 64, cache: new Map() }, [entry('1-0', 'x', 'n', '"nan"')])
  t.same(r.outbox.map((m) => m.topic), ['things/x/errors'])
})

t.test('processBatch: states are reconciled when definitions change', async (t) => {
  const d1 = defs()
  const cache = new Map<string, CachedState>()
  processBatch({ partition: 0, defs: d1, partitions: 64, cache }, [entry('1-0', 'x', 'n', '3')])
  const d2 = d1.apply([{ op: 'putTemplate', template: { id: 'T', properties: { n: { type: 'integer', history: true, change: 'on-change' }, mode: { type: 'string', enum: ['a', 'b'] }, extra: { type: 'number', default: 7 } } } }])
  const r = processBatch({ partition: 0, defs: d2, partitions: 64, cache }, [entry('2-0', 'x', 'n', '4')])
  t.same(Object.keys(r.states.get('x')!.properties).sort(), ['extra', 'n'], 'new default added, value kept')
})

t.test('planBeat: take, lose, hand over, minimal movement', async (t) => {
  const P = 8
  const owners = ['a', 'a', 'a', 'a', 'b', 'b', 'b', 'b']
  const held = new Map([[0, 10], [1, 11], [2, 12], [3, 13]])
  // c joins: a and b each hand over what the assignment moves to c, nothing else.
  const plan = planBeat('a', P, { owners, held, live: ['a', 'b', 'c'] }, new Map([[0, { token: 10 }], [1, { token: 11 }], [2, { token: 99 }], [3, { token: 13 }]]))
  t.same(plan.lost, [2], 'a token that changed means the lease was lost')
  t.same(plan.acquired, [{ partition: 2, token: 12 }], 'and the held lease is (re)loaded')
  t.equal(plan.target.length, 3, 'a keeps 3 of 8')
  t.equal(plan.handOver.length, 1, 'a hands over exactly one')
  const forC = planBeat('c', P, { owners, held: new Map(), live: ['a', 'b', 'c'] }, new Map())
  t.equal(forC.target.length, 2)
  t.notOk(forC.wantsMore, 'c waits: its partitions are still leased')
  const afterDeath = planBeat('b', P, { owners: owners.map((o) => o === 'a' ? null : o), held: new Map([[4, 1], [5, 1], [6, 1], [7, 1]]), live: ['b'] }, new Map([[4, { token: 1 }], [5, { token: 1 }], [6, { token: 1 }], [7, { token: 1 }]]))
  t.same(afterDeath.target, [0, 1, 2, 3, 4, 5, 6, 7], 'a survivor takes everything of a dead node')
  t.ok(afterDeath.wantsMore, 'free partitions: beat again soon')
})

t.test('helpers', async (t) => {
  t.ok(compareIds('10-0', '9-5') > 0, 'numeric, not lexicographic')
  t.ok(compareIds('5-2', '5-10') < 0)
  t.equal(compareIds('5-1', '5-1'), 0)
  const s = scheduledThings(defs(), 64)
  t.same([...s.values()].flat(), ['y'], 'only things with a scheduled rule are ticked')
})
