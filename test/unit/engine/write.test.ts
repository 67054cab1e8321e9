import t from 'tap'
import { applyWrite, countsAsChange, initialState, importModule, parseWrite, type Sample } from '../../../engine/index.ts'

const defs = importModule({
  version: 1,
  templates: [{
    id: 'Sensor',
    properties: {
      temperature: { type: 'number', min: -40, max: 150, change: { deadband: 0.5 } },
      count: { type: 'integer', change: 'always' },
      mode: { type: 'string', enum: ['off', 'auto'], default: 'off' },
      note: { type: 'string', change: 'never' },
      config: { type: 'json' },
    },
  }],
  things: [{ id: 's1', template: 'Sensor' }],
})
const def = defs.resolveThing('s1')!
const s0 = initialState(def)

t.test('parseWrite understands maps, envelopes and per-property payloads', async (t) => {
  t.same(parseWrite({ payload: '{"temperature": 21.5, "count": {"value": 3, "ts": 1000, "quality": "uncertain"}}' }), {
    writes: [{ property: 'temperature', value: 21.5 }, { property: 'count', value: 3, ts: 1000, quality: 'uncertain' }],
    rejections: [],
  })
  t.same(parseWrite({ property: 'temperature', payload: '22' }).writes, [{ property: 'temperature', value: 22 }])
  t.same(parseWrite({ property: 'temperature', payload: '{"quality":"bad"}' }).writes, [{ property: 'temperature', quality: 'bad' }])
  t.same(parseWrite({ property: 'temperature', payload: '{"value":1,"ts":"2024-01-01T00:00:00Z"}' }).writes, [{ property: 'temperature', value: 1, ts: Date.UTC(2024, 0, 1) }])
  t.same(parseWrite({ property: 'config', payload: '{"value":{"value":1}}' }).writes, [{ property: 'config', value: { value: 1 } }], 'wrapped envelope-shaped json')
  t.same(parseWrite({ property: 'config', payload: '{"value":1,"other":2}' }).writes, [{ property: 'config', value: { value: 1, other: 2 } }], 'not an envelope')
  t.match(parseWrite({ payload: '{not json' }).rejections, [{ code: 'ENGINE_BAD_JSON' }])
  t.match(parseWrite({ payload: '[1,2]' }).rejections, [{ code: 'ENGINE_BAD_WRITE' }])
  t.match(parseWrite({ property: 'x', payload: '{"value":1,"ts":"yesterday"}' }).rejections, [{ code: 'ENGINE_BAD_WRITE', property: 'x' }])
  t.match(parseWrite({ property: 'x', payload: '{"value":1,"quality":"great"}' }).rejections, [{ code: 'ENGINE_BAD_WRITE' }])
  t.match(parseWrite({ payload: '{"__proto__": {"polluted": true}}' }).rejections, [{ code: 'ENGINE_BAD_JSON' }])
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('applyWrite accepts good values and rejects bad ones individually', async (t) => {
  const r = applyWrite(s0, def, { payload: { temperature: 21.5, mode: 'turbo', speed: 3, count: 1.5, constructor: 1, note: 'hi' } }, 5000)
  t.same(r.rejections.map((x) => `${x.property} ${x.code}`), [
    'mode ENGINE_NOT_IN_ENUM',
    'speed ENGINE_UNKNOWN_PROPERTY',
    'count ENGINE_TYPE_MISMATCH',
    'constructor ENGINE_UNKNOWN_PROPERTY',
  ])
  t.same(r.state.properties.temperature?.current, { value: 21.5, ts: 5000, quality: 'good' })
  t.same(r.changes.map((c) => `${c.property}:${c.counted}`), ['temperature:true', 'note:false'])
  t.equal(s0.properties.temperature, undefined, 'input state not mutated')
  const range = applyWrite(s0, def, { property: 'temperature', payload: '151' }, 1)
  t.match(range.rejections, [{ code: 'ENGINE_OUT_OF_RANGE', property: 'temperature', message: /above the maximum 150/ }])
  t.equal(range.state, s0, 'nothing applied, same state object')
})

t.test('timestamps and quality-only updates', async (t) => {
  const a = applyWrite(s0, def, { property: 'temperature', payload: { value: 20, ts: 1000 } }, 5000).state
  const stale = applyWrite(a, def, { property: 'temperature', payload: { value: 30, ts: 999 } }, 6000)
  t.match(stale.rejections, [{ code: 'ENGINE_STALE_VALUE' }])
  const q = applyWrite(a, def, { property: 'temperature', payload: { quality: 'bad' } }, 6000)
  t.same(q.state.properties.temperature?.current, { value: 20, ts: 6000, quality: 'bad' })
  t.equal(q.changes[0]?.counted, true, 'quality change counts even within the deadband')
  t.match(applyWrite(s0, def, { property: 'temperature', payload: { quality: 'bad' } }, 1).rejections, [{ code: 'ENGINE_BAD_WRITE' }])
})

t.test('change policies', async (t) => {
  const sample = (value: number | string, quality: Sample['quality'] = 'good'): Sample => ({ value, ts: 0, quality })
  t.equal(countsAsChange('always', sample(1), sample(1)), true)
  t.equal(countsAsChange('never', sample(1), sample(2)), false)
  t.equal(countsAsChange('never', undefined, sample(2)), false)
  t.equal(countsAsChange('on-change', sample(1), sample(1)), false)
  t.equal(countsAsChange('on-change', sample(1), sample(2)), true)
  t.equal(countsAsChange(undefined, sample('a'), sample('a', 'bad')), true, 'default is on-change; quality counts')
  t.equal(countsAsChange({ deadband: 0.5 }, sample(20), sample(20.4)), false)
  t.equal(countsAsChange({ deadband: 0.5 }, sample(20), sample(20.5)), true)
  t.equal(countsAsChange({ deadband: 0.5 }, sample(20), sample(19.5)), true)
  t.equal(countsAsChange({ deadband: 0.5 }, undefined, sample(20)), true, 'first value counts')

  // Deadband compares with the last *counted* value, so slow drift is caught.
  let s = applyWrite(s0, def, { property: 'temperature', payload: '20' }, 1).state
  const seen: boolean[] = []
  for (const v of [20.2, 20.4, 20.6, 20.7]) {
    const r = applyWrite(s, def, { property: 'temperature', payload: String(v) }, 2)
    seen.push(r.changes[0]?.counted ?? false)
    s = r.state
  }
  t.same(seen, [false, false, true, false])
  t.equal(s.properties.temperature?.current.value, 20.7, 'current value always updates')
  t.equal(s.properties.temperature?.counted?.value, 20.6)
  t.equal(s.properties.temperature?.prev?.value, 20)

  // "always" counts repeats; "never" updates the value silently.
  const a1 = applyWrite(s0, def, { payload: { count: 1, note: 'x' } }, 1)
  const a2 = applyWrite(a1.state, def, { payload: { count: 1, note: 'y' } }, 2)
  t.same(a2.changes.map((c) => `${c.property}:${c.counted}`), ['count:true', 'note:false'])
  t.equal(a2.state.properties.note?.current.value, 'y')
  t.equal(a2.state.properties.note?.changedAt, undefined)

  // on-change from a default: same value with better quality counts, then repeats do not.
  const m1 = applyWrite(s0, def, { property: 'mode', payload: '"off"' }, 1)
  t.equal(m1.changes[0]?.counted, true)
  t.equal(applyWrite(m1.state, def, { property: 'mode', payload: '"off"' }, 2).changes[0]?.counted, false)
})
