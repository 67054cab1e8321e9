import t from 'tap'
import { propertyStateJson, sampleJson, statePayloadJson } from '../../../engine/thing/index.ts'
import type { PropertyState, Sample, ThingState } from '../../../engine/index.ts'

// The hand-built JSON of property states and of the `state` payload must be
// exactly what JSON.stringify gives for the objects it replaces: stored
// states are read back with JSON.parse, and subscribers parse the payload.

const s = (value: Sample['value'], ts: number, quality: Sample['quality'] = 'good'): Sample => ({ value, ts, quality })
const shared = s(12.5, 1_700_000_000_001)
const properties: Record<string, PropertyState> = {
  a: { current: s(1, 0, 'uncertain') },
  b: { current: shared, counted: shared, prev: s(-3, 5, 'bad'), changedAt: 1_700_000_000_001 },
  c: { current: s('quote " back \\ nl \n \u2028 \uD800 é', 7), counted: s('x', 6), changedAt: 6 },
  d: { current: s({ k: [1, null, true, { z: 'é' }] }, 8) },
  e: { current: s(null, 9) },
  f: { current: s(-0, 9) },
  g: { current: s(1e21, 10), counted: s(1e-7, 10) },
}

t.test('property states: byte for byte JSON.stringify', async (t) => {
  for (const [name, p] of Object.entries(properties)) t.equal(propertyStateJson(p), JSON.stringify(p), name)
  const odd = { current: { ts: 3, value: 1, quality: 'good' } } as unknown as PropertyState
  t.same(JSON.parse(propertyStateJson(odd)), odd, 'a sample stored in another key order still round-trips')
  const noValue = { current: { ts: 3, quality: 'bad' } } as unknown as PropertyState
  t.equal(propertyStateJson(noValue), JSON.stringify(noValue), 'a sample without value (stored by hand) is not written as "value":undefined')
  t.equal(sampleJson(s(true, 1, 'weird' as never)), JSON.stringify(s(true, 1, 'weird' as never)), 'an unknown quality is quoted')
})

t.test('state payload: byte for byte the JSON.stringify of the state view', async (t) => {
  const state: ThingState = {
    v: 1, thingId: 'thing-1.a:b', seq: 42, properties, rules: {}, alerts: {},
    shadow: { version: 3, desired: { a: { value: 5, setAt: 1 }, c: { value: 'é"', setAt: 2 }, d: { value: { x: [1] }, setAt: 3 } } },
  } as unknown as ThingState
  const view = (id: string, st: ThingState): string => {
    const current: Record<string, unknown> = {}
    for (const n in st.properties) current[n] = st.properties[n]!.current
    const desired: Record<string, unknown> = {}
    for (const n in st.shadow.desired) desired[n] = st.shadow.desired[n]!.value
    return JSON.stringify({ id, thingId: st.thingId, seq: st.seq, properties: current, desired, shadowVersion: st.shadow.version })
  }
  t.equal(statePayloadJson('0:1-0/state', state), view('0:1-0/state', state))
  const empty = { ...state, properties: {}, shadow: { version: 0, desired: {} } }
  t.equal(statePayloadJson('0:1-0/state', empty), view('0:1-0/state', empty), 'no properties, nothing desired')
})
