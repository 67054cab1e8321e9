import t from 'tap'
import {
  acknowledgeAlert, clearAlert, computeDelta, emptyShadow, importModule, initialState, nextDueAt, processInput, raiseAlert,
  reconcileState, setDesired, type Effect, type ThingInput, type ThingState,
} from '../../../engine/index.ts'

const defs = importModule({
  version: 1,
  templates: [{
    id: 'Pump',
    properties: {
      temperature: { type: 'number', history: true, change: { deadband: 0.5 } },
      limit: { type: 'number', default: 80, persist: true },
      mode: { type: 'string', enum: ['off', 'auto'], default: 'off', persist: true },
      running: { type: 'boolean', default: false },
      vibration: { type: 'number' },
    },
  }],
  things: [{ id: 'p1', template: 'Pump' }, { id: 'p2', template: 'Pump' }],
  rules: [
    {
      id: 'hot',
      template: 'Pump',
      when: 'temperature > limit',
      actions: [
        { type: 'raiseAlert', alert: 'overTemp', severity: 'critical', message: '${thing.id} at ${temperature}' },
        { type: 'publish', topic: 'alarms/${thing.id}', payload: { t: '${temperature}' }, qos: 1 },
      ],
      resetActions: [{ type: 'clearAlert', alert: 'overTemp' }],
    },
    { id: 'shaking', thing: 'p1', when: 'vibration > 5', trigger: 'level', actions: [{ type: 'emitEvent', event: 'vibration', payload: { v: '${vibration}' } }] },
    { id: 'follow', thing: 'p1', when: 'mode == "auto"', actions: [{ type: 'setProperty', thing: 'p2', property: 'mode', value: '${mode}' }] },
    { id: 'stuck', thing: 'p1', when: 'running && age.running > 60000', everySeconds: 10, actions: [{ type: 'emitEvent', event: 'stuck' }] },
    { id: 'badTopic', thing: 'p2', when: 'vibration > 1', actions: [{ type: 'publish', topic: '${"$SYS/" + thing.id}' }] },
    { id: 'divide', thing: 'p2', when: 'temperature / (vibration - vibration) > 1', actions: [{ type: 'emitEvent', event: 'never' }] },
  ],
})
const p1 = defs.resolveThing('p1')!
const p2 = defs.resolveThing('p2')!

function run (state: ThingState, inputs: Array<[ThingInput, number]>, def = p1): { state: ThingState, effects: Effect[][], rejections: unknown[][] } {
  const effects: Effect[][] = []
  const rejections: unknown[][] = []
  for (const [input, now] of inputs) {
    const r = processInput(state, def, input, { now })
    state = r.state
    effects.push(r.effects)
    rejections.push(r.rejections)
  }
  return { state, effects, rejections }
}
const w = (payload: Record<string, unknown>): ThingInput => ({ type: 'write', payload: payload as never })
const types = (es: Effect[]): string[] => es.map((e) => (e.type === 'alert' ? `alert:${e.transition}` : e.type === 'event' ? `event:${e.event}` : e.type))

t.test('a counted change notifies, appends history and evaluates rules', async (t) => {
  const r = processInput(initialState(p1), p1, w({ temperature: 85 }), { now: 1000 })
  t.same(types(r.effects), ['stateChanged', 'historyAppend', 'alert:raised', 'publish'])
  t.match(r.effects[0], { type: 'stateChanged', seq: 1, changes: [{ property: 'temperature', value: 85, ts: 1000, quality: 'good' }] })
  t.match(r.effects[1], { type: 'historyAppend', property: 'temperature', value: 85 })
  t.match(r.effects[3], { type: 'publish', topic: 'alarms/p1', payload: { t: 85 }, qos: 1, retain: false, ruleId: 'hot' })
  t.match(r.state.alerts.overTemp, { status: 'active', severity: 'critical', message: 'p1 at 85', raisedAt: 1000, occurrences: 1, ruleId: 'hot' })
  t.equal(r.state.seq, 1)
  // Within the deadband: nothing counted, nothing evaluated.
  const r2 = processInput(r.state, p1, w({ temperature: 85.2 }), { now: 2000 })
  t.same(r2.effects, [])
  t.equal(r2.state.properties.temperature?.current.value, 85.2)
})

t.test('edge trigger fires once per false->true transition; reset actions on true->false', async (t) => {
  const { effects, state } = run(initialState(p1), [
    [w({ temperature: 85 }), 1], // false -> true: fire
    [w({ temperature: 90 }), 2], // still true: no fire
    [w({ temperature: 70 }), 3], // true -> false: reset (clear alert)
    [w({ temperature: 95 }), 4], // false -> true: fire again, new occurrence
  ])
  t.same(effects.map((e) => types(e).filter((x) => x.startsWith('alert') || x === 'publish')), [
    ['alert:raised', 'publish'], [], ['alert:cleared'], ['alert:raised', 'publish'],
  ])
  t.match(state.alerts.overTemp, { status: 'active', occurrences: 2, raisedAt: 4 })
  t.same(state.rules.hot, { active: true, lastFiredAt: 4 })
})

t.test('rule memory is replaced only when the outcome changes (an evaluation with the same result writes nothing)', async (t) => {
  const s = processInput(initialState(p1), p1, w({ temperature: 85 }), { now: 1, inPlace: true }).state
  const fired = s.rules.hot
  t.match(fired, { active: true, lastFiredAt: 1 })
  processInput(s, p1, w({ temperature: 90 }), { now: 2, inPlace: true })
  t.equal(s.rules.hot, fired, 'still true: the same memory object')
  processInput(s, p1, w({ temperature: 70 }), { now: 3, inPlace: true })
  t.not(s.rules.hot, fired, 'true -> false: replaced')
  t.same(s.rules.hot, { active: false, lastFiredAt: 1 })
  const old = { ...s, rules: { hot: { active: false, lastEvalAt: 3, lastFiredAt: 1 } } }
  t.same(processInput(old, p1, w({ temperature: 99 }), { now: 4 }).state.rules.hot, { active: true, lastFiredAt: 4 }, 'lastEvalAt of an older release is not carried on')
})

t.test('level trigger fires on every evaluation while true', async (t) => {
  const { effects } = run(initialState(p1), [
    [w({ vibration: 6 }), 1], [w({ vibration: 7 }), 2], [w({ vibration: 2 }), 3], [w({ vibration: 8 }), 4],
  ])
  t.same(effects.map((e) => types(e).filter((x) => x.startsWith('event'))), [['event:vibration'], ['event:vibration'], [], ['event:vibration']])
  t.match(effects[1]?.find((e) => e.type === 'event'), { payload: { v: 7 }, ts: 2 })
})

t.test('level-triggered alerts do not create new occurrences', async (t) => {
  let a = raiseAlert(undefined, 'x', { severity: 'info' }, 1)
  t.match(a, { ok: true, transition: 'raised', record: { status: 'active', occurrences: 1 } })
  const again = raiseAlert(a.ok ? a.record : undefined, 'x', { severity: 'info' }, 2)
  t.match(again, { ok: true, transition: null, record: { raisedAt: 1 } })
  a = acknowledgeAlert(a.ok ? a.record : undefined, 'x', 'op-7', 3)
  t.match(a, { ok: true, transition: 'acknowledged', record: { status: 'acknowledged', acknowledgedBy: 'op-7', acknowledgedAt: 3 } })
  t.match(raiseAlert(a.ok ? a.record : undefined, 'x', { severity: 'info' }, 4), { transition: null }, 'acknowledged alert stays')
  const c = clearAlert(a.ok ? a.record : undefined, 5)
  t.match(c, { transition: 'cleared', record: { status: 'cleared', clearedAt: 5 } })
  t.match(acknowledgeAlert(c.record, 'x', undefined, 6), { ok: false, code: 'ENGINE_ALERT_TRANSITION' })
  t.match(acknowledgeAlert(undefined, 'x', undefined, 6), { ok: false, code: 'ENGINE_UNKNOWN_ALERT' })
  t.match(clearAlert(c.record, 7), { transition: null })
  t.match(raiseAlert(c.record, 'x', { severity: 'warning' }, 8), { transition: 'raised', record: { occurrences: 2, status: 'active' } })
})

t.test('alert lifecycle through the processor', async (t) => {
  const { state, effects, rejections } = run(initialState(p1), [
    [w({ temperature: 85 }), 1],
    [{ type: 'ackAlert', alert: 'overTemp', by: 'alice' }, 2],
    [{ type: 'ackAlert', alert: 'overTemp', by: 'alice' }, 3],
    [{ type: 'clearAlert', alert: 'overTemp' }, 4],
    [{ type: 'ackAlert', alert: 'overTemp' }, 5],
    [{ type: 'clearAlert', alert: 'nope' }, 6],
  ])
  t.same(effects.slice(1).map(types), [['alert:acknowledged'], [], ['alert:cleared'], [], []])
  t.same(rejections.map((r) => (r as Array<{ code: string }>).map((x) => x.code)), [[], [], [], [], ['ENGINE_ALERT_TRANSITION'], ['ENGINE_UNKNOWN_ALERT']])
  t.match(state.alerts.overTemp, { status: 'cleared', acknowledgedBy: 'alice', clearedAt: 4 })
})

t.test('setProperty is emitted as an effect with a cascade depth limit', async (t) => {
  const r = processInput(initialState(p1), p1, w({ mode: 'auto' }), { now: 1 })
  t.match(r.effects.find((e) => e.type === 'setProperty'), { thingId: 'p2', property: 'mode', value: 'auto', sourceThingId: 'p1', depth: 1, ruleId: 'follow' })
  t.notOk(r.state.properties.mode?.current.value !== 'auto')
  const deep = processInput(initialState(p1), p1, { type: 'write', payload: { mode: 'auto' }, source: 'rule', depth: 8 }, { now: 1 })
  t.notOk(deep.effects.some((e) => e.type === 'setProperty'))
  t.match(deep.effects.find((e) => e.type === 'ruleError'), { ruleId: 'follow', code: 'ENGINE_CASCADE_LIMIT' })
})

t.test('rule failures are contained and reported', async (t) => {
  const r = processInput(initialState(p2), p2, w({ vibration: 3, temperature: 10 }), { now: 1 })
  const errors = r.effects.filter((e) => e.type === 'ruleError')
  t.match(errors, [
    { ruleId: 'badTopic', code: 'ENGINE_EVAL_FORBIDDEN' },
    { ruleId: 'divide', code: 'ENGINE_EVAL_TYPE' },
  ])
  t.notOk(r.effects.some((e) => e.type === 'publish'))
  t.ok(r.effects.some((e) => e.type === 'stateChanged'), 'the write itself still applied')
  t.equal(r.state.rules.divide, undefined, 'failed evaluation leaves edge memory unchanged (none yet: inactive)')
})

t.test('scheduled rules run on ticks when due', async (t) => {
  let s = initialState(p1)
  t.equal(nextDueAt(s, p1), Number.NEGATIVE_INFINITY, 'never evaluated: due now')
  s = processInput(s, p1, w({ running: true }), { now: 0 }).state
  const early = processInput(s, p1, { type: 'tick' }, { now: 30_000 })
  t.notOk(early.effects.some((e) => e.type === 'event'), 'age 30s < 60s')
  t.equal(nextDueAt(early.state, p1), 40_000)
  const notDue = processInput(early.state, p1, { type: 'tick' }, { now: 35_000 })
  t.equal(notDue.state.rules.stuck?.lastScheduledAt, 30_000, 'not due: not evaluated')
  const late = processInput(notDue.state, p1, { type: 'tick' }, { now: 61_000 })
  t.same(types(late.effects), ['event:stuck'])
  const later = processInput(late.state, p1, { type: 'tick' }, { now: 71_000 })
  t.same(later.effects, [], 'edge: no second fire')
})

t.test('desired state: delta until reported matches, versions detect stale writes', async (t) => {
  const { state, effects, rejections } = run(initialState(p1), [
    [{ type: 'setDesired', patch: { mode: 'auto', limit: 90 } }, 1],
    [w({ mode: 'auto' }), 2],
    [w({ limit: 90 }), 3],
    [{ type: 'setDesired', patch: { mode: 'off' }, expectedVersion: 0 }, 4],
    [{ type: 'setDesired', patch: { mode: 'turbo' } }, 5],
    [{ type: 'setDesired', patch: { mode: null }, expectedVersion: 1 }, 6],
  ])
  const deltas = effects.map((e) => e.filter((x) => x.type === 'delta'))
  t.match(deltas[0], [{ version: 1, state: { limit: 90, mode: 'auto' } }])
  t.match(deltas[1], [{ version: 1, state: { limit: 90 } }])
  t.same(deltas[2]?.[0], { type: 'delta', thingId: 'p1', version: 1, state: {} }, 'in sync')
  t.match(rejections[3], [{ code: 'ENGINE_VERSION_CONFLICT' }])
  t.match(rejections[4], [{ code: 'ENGINE_NOT_IN_ENUM', property: 'mode' }])
  t.same(deltas[3], [])
  t.equal(state.shadow.version, 2)
  t.same(Object.keys(state.shadow.desired), ['limit'])

  // The pure functions directly.
  const sh = setDesired(emptyShadow(), { a: 1, b: { x: [1] } }, 10)
  t.ok(sh.ok)
  if (!sh.ok) return
  t.same(computeDelta(sh.shadow, (n) => (n === 'b' ? { x: [1] } : undefined)), { version: 1, state: { a: 1 } })
  t.match(setDesired(sh.shadow, { a: 2 }, 11, 0), { ok: false, code: 'ENGINE_VERSION_CONFLICT' })
  t.match(setDesired(sh.shadow, { a: 2 }, 11, 1), { ok: true, shadow: { version: 2, desired: { a: { value: 2, version: 2, at: 11 } } } })
  t.match(setDesired(sh.shadow, JSON.parse('{"__proto__": 1}'), 11), { ok: false })
})

t.test('processing is deterministic and state is plain JSON', async (t) => {
  const inputs: Array<[ThingInput, number]> = [
    [w({ temperature: 85, vibration: 9 }), 1],
    [{ type: 'write', property: 'temperature', payload: '{"value": 60, "quality": "uncertain"}' }, 2],
    [{ type: 'setDesired', patch: { mode: 'auto' } }, 3],
    [{ type: 'tick' }, 4],
    [{ type: 'write', payload: '{"mode":"auto","running":true}' }, 5],
    [{ type: 'ackAlert', alert: 'overTemp' }, 6],
  ]
  const a = run(initialState(p1), inputs)
  const b = run(initialState(p1), inputs)
  t.same(a, b)
  const json = JSON.parse(JSON.stringify(a.state)) as ThingState
  t.same(json, a.state, 'state survives a JSON round trip unchanged')
  // Replaying the tail from a stored intermediate state gives the same result.
  const head = run(initialState(p1), inputs.slice(0, 3))
  const tail = run(JSON.parse(JSON.stringify(head.state)) as ThingState, inputs.slice(3))
  t.same(tail.state, a.state)
  t.same(tail.effects, a.effects.slice(3))
})

t.test('processInput leaves its input alone unless asked to update it in place', async (t) => {
  // A state with a value, rule memory, an active alert and a desired value.
  const s0 = run(initialState(p1), [[w({ temperature: 85 }), 1000], [{ type: 'setDesired', patch: { mode: 'auto' } }, 1001]]).state
  const snapshot = JSON.stringify(s0)
  const input: ThingInput = w({ temperature: 70, vibration: 9, mode: 'auto' })
  const pure = processInput(s0, p1, input, { now: 2000 })
  t.equal(JSON.stringify(s0), snapshot, 'input state unchanged')
  t.not(pure.state, s0, 'a new state')
  t.same(types(pure.effects), ['stateChanged', 'historyAppend', 'alert:cleared', 'setProperty', 'event:vibration', 'delta'], 'the input changed values, rules, the alert and the delta')
  t.same(pure.written.sort(), ['mode', 'temperature', 'vibration'], 'written names every property replaced')
  const inPlace = processInput(s0, p1, input, { now: 2000, inPlace: true })
  t.equal(inPlace.state, s0, 'in place: the same object, updated')
  t.same(inPlace.state, pure.state, 'to the same state')
  t.same(inPlace.effects, pure.effects, 'with the same effects')
})

t.test('reconcileState applies definition changes and restart persistence', async (t) => {
  const s = run(initialState(p1), [[w({ temperature: 85, limit: 95, running: true, mode: 'auto' }), 1]]).state
  const restarted = reconcileState(s, p1, { restart: true })
  t.equal(restarted.properties.limit?.current.value, 95, 'persist: kept')
  t.equal(restarted.properties.mode?.current.value, 'auto', 'persist: kept')
  t.equal(restarted.properties.temperature, undefined, 'not persisted, no default: dropped')
  t.same(restarted.properties.running?.current, { value: false, ts: 0, quality: 'uncertain' }, 'not persisted: back to default')
  t.equal(reconcileState(s, p1).properties.temperature?.current.value, 85, 'no restart: kept')
  const smaller = importModule({ version: 1, templates: [{ id: 'Pump', properties: { limit: { type: 'number' } } }], things: [{ id: 'p1', template: 'Pump' }] }).resolveThing('p1')!
  const r = reconcileState(s, smaller)
  t.same(Object.keys(r.properties), ['limit'])
  t.same(r.rules, {}, 'memory of removed rules dropped')
})
