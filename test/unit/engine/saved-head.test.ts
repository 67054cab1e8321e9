import t from 'tap'
import { importModule, initialState, processInput, reconcileState } from '../../../engine/index.ts'
import { cloneState, isHeadSaved, markHeadSaved } from '../../../engine/thing/index.ts'

// A store may skip rewriting a state's rules, alerts and shadow while they are
// as it stored them (RedisStore, format 2): processInput must take the state
// out of the saved set whenever it changes one of them, and only then.

const defs = importModule({
  version: 1,
  templates: [{ id: 'T', properties: { x: { type: 'number' }, y: { type: 'number' } } }],
  things: [{ id: 'a', template: 'T' }],
  rules: [{ id: 'hot', template: 'T', when: 'x > 10', actions: [{ type: 'raiseAlert', alert: 'hot', severity: 'warning' }], resetActions: [{ type: 'clearAlert', alert: 'hot' }] }],
})
const def = defs.resolveThing('a')!
const write = (property: string, payload: string) => ({ type: 'write' as const, source: 'device' as const, property, payload })

t.test('saved until rules, alerts or shadow change', async (t) => {
  const s = initialState(def)
  t.notOk(isHeadSaved(s), 'a new state is not saved')
  markHeadSaved(s)
  processInput(s, def, write('y', '5'), { now: 1, inPlace: true })
  t.ok(isHeadSaved(s), 'a write that leaves rules, alerts and shadow alone keeps it saved')
  processInput(s, def, write('x', '5'), { now: 2, inPlace: true })
  t.ok(isHeadSaved(s), 'a rule evaluated with the same outcome changes nothing stored')
  processInput(s, def, write('x', '50'), { now: 3, inPlace: true })
  t.notOk(isHeadSaved(s), 'a rule that fires (memory and alert replaced) unsaves it')
  markHeadSaved(s)
  processInput(s, def, write('x', '60'), { now: 4, inPlace: true })
  t.ok(isHeadSaved(s), 'still true, no edge')
  processInput(s, def, { type: 'ackAlert', alert: 'hot', by: 'op' }, { now: 5, inPlace: true })
  t.notOk(isHeadSaved(s), 'an alert acknowledged unsaves it')
  markHeadSaved(s)
  processInput(s, def, { type: 'setDesired', patch: { y: 1 } }, { now: 6, inPlace: true })
  t.notOk(isHeadSaved(s), 'a desired value unsaves it')
  markHeadSaved(s)
  t.notOk(isHeadSaved(cloneState(s)), 'a copy is not saved')
  t.notOk(isHeadSaved(reconcileState(s, def)), 'a reconciled state is not saved')
  t.notOk(Object.keys(s).includes('headSaved'), 'nothing added to the state itself')
})
