import { readFileSync } from 'node:fs'
import t from 'tap'
import { Definitions, EngineError, validateModule, validateModuleText, importModule, type DefinitionChange } from '../../../engine/index.ts'

const examplePath = new URL('../../../engine/examples/pump-station.json', import.meta.url)

const base: DefinitionChange[] = [
  { op: 'putTemplate', template: { id: 'Pump', properties: { temperature: { type: 'number' }, mode: { type: 'string', enum: ['off', 'auto'] } } } },
  { op: 'putThing', thing: { id: 'p1', template: 'Pump' } },
  { op: 'putRule', rule: { id: 'hot', template: 'Pump', when: 'temperature > 80', actions: [] } },
]

function problemsOf (f: () => unknown): Array<{ code: string, path: string }> {
  try {
    f()
  } catch (e) {
    return ((e as EngineError).problems ?? []).map((p) => ({ code: p.code, path: p.path }))
  }
  throw new Error('expected a rejection')
}

t.test('the pump-station example validates and resolves', async (t) => {
  const r = validateModuleText(readFileSync(examplePath, 'utf8'))
  if (!r.ok) t.fail(JSON.stringify(r.problems))
  t.ok(r.ok)
  if (!r.ok) return
  const defs = r.definitions
  t.equal(defs.version, 1)
  t.same([...defs.things.keys()], ['pump-1', 'pump-2', 'pump-3'])
  const p3 = defs.resolveThing('pump-3')
  t.same(p3?.templateChain, ['Device', 'Pump'])
  t.ok(p3?.propertyNames.has('vibration'), 'thing-level property')
  t.ok(p3?.propertyNames.has('online'), 'inherited property')
  t.same(p3?.rules.map((x) => x.id), ['pump-cooled-down', 'pump-over-temperature', 'pump-stalled', 'pump-3-vibration'])
  t.same(defs.resolveThing('pump-2')?.rules.map((x) => x.id), ['pump-cooled-down', 'pump-over-temperature', 'pump-stalled'])
  const temp = p3?.properties.temperature
  t.equal(temp?.history, true)
  t.same(temp?.change, { deadband: 0.5 })
  t.equal(defs.resolveThing('nope'), undefined)
})

t.test('apply yields a new immutable snapshot with version + 1', async (t) => {
  const d0 = Definitions.empty()
  const d1 = d0.apply(base)
  t.equal(d0.version, 0)
  t.equal(d0.things.size, 0, 'old snapshot untouched')
  t.equal(d1.version, 1)
  t.ok(Object.isFrozen(d1.templates.get('Pump')), 'definitions are frozen')
  const d2 = d1.apply({ op: 'putThing', thing: { id: 'p2', template: 'Pump' } })
  t.equal(d2.version, 2)
  t.same(d2.changedThingsSince(d1), ['p2'], 'only the new thing changed')
  const d3 = d2.apply({ op: 'putTemplate', template: { id: 'Pump', properties: { temperature: { type: 'number', max: 150 }, mode: { type: 'string' } } } })
  t.same(d3.changedThingsSince(d2), ['p1', 'p2'], 'template change touches all its things')
  t.equal(d3.resolveThing('p1')?.properties.temperature?.max, 150)
  t.equal(d3.resolveThing('p1')?.rules.length, 1, 'compiled rule carried over')
  t.same(Definitions.fromSnapshot(JSON.parse(JSON.stringify(d3.toSnapshot()))).toSnapshot(), d3.toSnapshot(), 'snapshot round-trips')
})

t.test('expectedVersion detects concurrent admin writes', async (t) => {
  const d1 = Definitions.empty().apply(base)
  t.throws(() => d1.apply({ op: 'deleteRule', id: 'hot' }, { expectedVersion: 0 }), { code: 'ENGINE_VERSION_CONFLICT' })
  t.equal(d1.apply({ op: 'deleteRule', id: 'hot' }, { expectedVersion: 1 }).rules.size, 0)
})

t.test('referential checks on delete and put', async (t) => {
  const d1 = Definitions.empty().apply(base)
  t.same(problemsOf(() => d1.apply({ op: 'deleteTemplate', id: 'Pump' })), [{ code: 'ENGINE_IN_USE', path: 'changes[0].id' }])
  t.match(d1.tryApply({ op: 'deleteTemplate', id: 'Pump' }), { ok: false, problems: [{ message: /still used by thing "p1", rule "hot"/ }] })
  t.same(problemsOf(() => d1.apply({ op: 'deleteThing', id: 'ghost' })), [{ code: 'ENGINE_UNKNOWN_THING', path: 'changes[0].id' }])
  // Deleting everything in one batch is fine: the batch is checked as a whole.
  const empty = d1.apply([{ op: 'deleteRule', id: 'hot' }, { op: 'deleteThing', id: 'p1' }, { op: 'deleteTemplate', id: 'Pump' }])
  t.equal(empty.templates.size + empty.things.size + empty.rules.size, 0)
  // A template change that breaks an existing rule is refused, pointing at the rule.
  t.same(problemsOf(() => d1.apply({ op: 'putTemplate', template: { id: 'Pump', properties: { mode: { type: 'string' } } } })),
    [{ code: 'ENGINE_RULE_COMPILE', path: 'rules["hot"].when' }])
  // A thing targeted by another rule cannot be deleted.
  const d2 = d1.apply([
    { op: 'putThing', thing: { id: 'p2', template: 'Pump' } },
    { op: 'putRule', rule: { id: 'follow', thing: 'p1', when: 'temperature > 1', actions: [{ type: 'setProperty', thing: 'p2', property: 'mode', value: 'auto' }] } },
  ])
  t.match(d2.tryApply({ op: 'deleteThing', id: 'p2' }), { ok: false, problems: [{ code: 'ENGINE_IN_USE', message: /rule "follow" \(setProperty target\)/ }] })
  // All-or-nothing: one bad change rejects the batch.
  const r = d1.tryApply([{ op: 'putThing', thing: { id: 'p9', template: 'Pump' } }, { op: 'putThing', thing: { id: 'p10', template: 'Nope' } }])
  t.match(r, { ok: false, problems: [{ code: 'ENGINE_UNKNOWN_TEMPLATE', path: 'changes[1].thing.template' }] })
  t.notOk(d1.things.has('p9'))
})

t.test('malformed changes are reported with paths', async (t) => {
  const r = Definitions.empty().tryApply([{ op: 'putThing', thing: { id: 'bad id', template: 'X' } } as DefinitionChange, { op: 'dance' } as unknown as DefinitionChange])
  t.match(r, { ok: false, problems: [{ code: 'ENGINE_INVALID_DEFINITION', path: 'changes[0].thing.id' }, { code: 'ENGINE_INVALID_DEFINITION', path: 'changes[1].op' }] })
})

t.test('validateModule reports every problem with its JSON path', async (t) => {
  const existing = Definitions.empty().apply({ op: 'putTemplate', template: { id: 'Device', properties: { online: { type: 'boolean' } } } })
  const bundle = {
    version: 1,
    templates: [
      { id: 'Pump', extends: 'Device', properties: { temperature: { type: 'number', min: 10, max: 0 } } },
      { id: 'Loop1', extends: 'Loop2' },
      { id: 'Loop2', extends: 'Loop1' },
      { id: 'Pump' },
      { id: 'Broken', properties: { x: { type: 'decimal' } } },
    ],
    things: [
      { id: 'p1', template: 'Pump' },
      { id: 'p2', template: 'Device' },
      { id: 'p3', template: 'Pump', properties: { online: { type: 'string' } } },
      { id: 'p4', template: 'Pump4' },
      { id: 'p5', template: 'Broken' },
    ],
    rules: [
      { id: 'r1', template: 'Pump', when: 'temperature >\n 80 &&', actions: [] },
      { id: 'r2', thing: 'p1', when: 'online', actions: [{ type: 'publish', topic: '$SYS/x' }] },
      { id: 'r3', thing: 'p2', when: 'online', actions: [{ type: 'setProperty', property: 'temperature', value: 1 }] },
      { id: 'r4', when: 'online', actions: [] },
      { id: 'r5', template: 'Pump', when: 'online', actions: [{ type: 'shout' }] },
    ],
    extra: true,
  }
  const r = validateModule(bundle, existing)
  t.notOk(r.ok)
  if (r.ok) return
  const got = r.problems.map((p) => `${p.path} ${p.code}`)
  t.same(got, [
    'extra ENGINE_INVALID_DEFINITION',
    'templates[0].properties.temperature.max ENGINE_INVALID_DEFINITION',
    'templates[1].extends ENGINE_TEMPLATE_CYCLE',
    'templates[2].extends ENGINE_TEMPLATE_CYCLE',
    'templates[3].id ENGINE_DUPLICATE_ID',
    'templates[4].properties.x.type ENGINE_INVALID_DEFINITION',
    'things[2].properties.online.type ENGINE_PROPERTY_CONFLICT',
    'things[3].template ENGINE_UNKNOWN_TEMPLATE',
    'rules[0].when ENGINE_RULE_COMPILE',
    'rules[1].actions[0].topic ENGINE_INVALID_DEFINITION',
    'rules[2].actions[0].property ENGINE_UNKNOWN_PROPERTY',
    'rules[3] ENGINE_INVALID_DEFINITION',
    'rules[4].actions[0].type ENGINE_INVALID_DEFINITION',
  ])
  t.notOk(got.some((g) => g.startsWith('things[4]')), 'no "unknown template" for a template that failed its own shape check')
  const dup = r.problems.find((p) => p.code === 'ENGINE_DUPLICATE_ID')
  t.match(dup?.message, /first declared at templates\[0\]/)
  const compile = r.problems.find((p) => p.path === 'rules[0].when')
  t.match(compile?.position, { line: 2, column: 7 }, 'end of input after "&&"')
  t.match(r.problems.find((p) => p.path === 'things[3].template')?.message, 'unknown template "Pump4"')
  t.equal(existing.templates.size, 1, 'existing snapshot unchanged')
})

t.test('validateModule checks version and JSON first', async (t) => {
  t.match(validateModule({ version: 2, templates: 'nonsense' }), { ok: false, problems: [{ code: 'ENGINE_UNSUPPORTED_VERSION', path: 'version' }] })
  t.match(validateModule([]), { ok: false, problems: [{ code: 'ENGINE_INVALID_DEFINITION', path: '' }] })
  t.match(validateModuleText('{"version": 1,'), { ok: false, problems: [{ code: 'ENGINE_BAD_JSON' }] })
  t.match(validateModuleText('{"version": 1, "templates": [{"id": "A", "properties": {"__proto__": {"type": "number"}}}]}'), { ok: false, problems: [{ code: 'ENGINE_BAD_JSON', message: /forbidden key/ }] })
  t.match(validateModule({ version: 1, templates: [{ id: 'A', properties: { constructor: { type: 'number' }, now: { type: 'number' } } }] }),
    { ok: false, problems: [{ path: 'templates[0].properties.constructor' }, { path: 'templates[0].properties.now' }] })
})

t.test('importModule upserts on top of existing definitions, all or nothing', async (t) => {
  const d1 = importModule(JSON.parse(readFileSync(examplePath, 'utf8')))
  const d2 = importModule({ version: 1, things: [{ id: 'pump-4', template: 'Pump' }], rules: [{ id: 'pump-4-hot', thing: 'pump-4', when: 'temperature > 10', actions: [] }] }, d1)
  t.equal(d2.version, d1.version + 1)
  t.equal(d2.things.size, 4)
  t.equal(d2.resolveThing('pump-4')?.rules.length, 4)
  t.throws(() => importModule({ version: 1, things: [{ id: 'pump-5', template: 'Pump' }, { id: 'pump-6', template: 'Valve' }] }, d2),
    { code: 'ENGINE_DEFINITIONS_REJECTED', message: /things\[1\]\.template: unknown template "Valve"/ })
  t.equal(d2.things.size, 4)
})
