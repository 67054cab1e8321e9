import t from 'tap'
import { checkValue, type PropertyDef, type TemplateDef } from '../../../engine/index.ts'
import { checkPropertyDef, resolveTemplates } from '../../../engine/model/index.ts'

t.test('checkValue accepts and normalises each type', async (t) => {
  const ok = (def: PropertyDef, v: unknown, expected: unknown = v): void => {
    const r = checkValue(def, v as never)
    t.ok(r.ok, `${def.type} accepts ${JSON.stringify(v)}`)
    if (r.ok) t.same(r.value, expected)
  }
  ok({ type: 'number' }, 1.5)
  ok({ type: 'integer' }, 42)
  ok({ type: 'boolean' }, false)
  ok({ type: 'string' }, 'x')
  ok({ type: 'json' }, { a: [1, { b: null }] })
  ok({ type: 'json' }, null)
  ok({ type: 'datetime' }, '2024-05-01T12:00:00+02:00', '2024-05-01T10:00:00.000Z')
  ok({ type: 'datetime' }, 0, '1970-01-01T00:00:00.000Z')
  ok({ type: 'location' }, { lat: 1, lon: 2 })
  ok({ type: 'location' }, { lon: 2, lat: 1, alt: 300 }, { lat: 1, lon: 2, alt: 300 })
  ok({ type: 'number', nullable: true }, null)
})

t.test('checkValue rejects with stable codes', async (t) => {
  const bad = (def: PropertyDef, v: unknown, code: string): void => {
    const r = checkValue(def, v as never)
    t.notOk(r.ok, `${def.type} rejects ${JSON.stringify(v)?.slice(0, 30)}`)
    if (!r.ok) t.equal(r.code, code)
  }
  bad({ type: 'number' }, '1', 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'number' }, null, 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'integer' }, 1.5, 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'integer' }, 2 ** 60, 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'number', min: 0, max: 10 }, -1, 'ENGINE_OUT_OF_RANGE')
  bad({ type: 'number', min: 0, max: 10 }, 10.01, 'ENGINE_OUT_OF_RANGE')
  bad({ type: 'string', enum: ['a', 'b'] }, 'c', 'ENGINE_NOT_IN_ENUM')
  bad({ type: 'integer', enum: [1, 2] }, 3, 'ENGINE_NOT_IN_ENUM')
  bad({ type: 'string', maxLength: 3 }, 'abcd', 'ENGINE_VALUE_TOO_LARGE')
  bad({ type: 'string' }, 'x'.repeat(70_000), 'ENGINE_VALUE_TOO_LARGE')
  bad({ type: 'boolean' }, 0, 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'datetime' }, '2024-05-01 12:00', 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'datetime' }, '2024-05-01T12:00:00', 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'location' }, { lat: 91, lon: 0 }, 'ENGINE_OUT_OF_RANGE')
  bad({ type: 'location' }, { lat: 0, lon: 0, extra: 1 }, 'ENGINE_TYPE_MISMATCH')
  bad({ type: 'location' }, [0, 0], 'ENGINE_TYPE_MISMATCH')
  let deep: unknown = 1
  for (let i = 0; i < 40; i++) deep = [deep]
  bad({ type: 'json' }, deep, 'ENGINE_VALUE_TOO_LARGE')
  bad({ type: 'json' }, { s: 'x'.repeat(70_000) }, 'ENGINE_VALUE_TOO_LARGE')
})

t.test('checkPropertyDef finds semantic problems with relative paths', async (t) => {
  t.same(checkPropertyDef({ type: 'number', min: 0, max: 10, default: 5 }), [])
  const paths = (def: PropertyDef): string[] => checkPropertyDef(def).map((p) => `${p.code} ${p.path}`)
  t.same(paths({ type: 'number', min: 5, max: 1 }), ['ENGINE_INVALID_DEFINITION max'])
  t.same(paths({ type: 'number', max: 1, default: 2 }), ['ENGINE_OUT_OF_RANGE default'])
  t.same(paths({ type: 'string', min: 1, change: { deadband: 1 } }), ['ENGINE_INVALID_DEFINITION min', 'ENGINE_INVALID_DEFINITION change'])
  t.same(paths({ type: 'boolean', enum: ['x'] }), ['ENGINE_INVALID_DEFINITION enum'])
  t.same(paths({ type: 'integer', enum: [1, 2.5] }), ['ENGINE_TYPE_MISMATCH enum[1]'])
  t.same(paths({ type: 'string', enum: ['a'], default: 'b' }), ['ENGINE_NOT_IN_ENUM default'])
  t.same(paths({ type: 'number', maxLength: 3 }), ['ENGINE_INVALID_DEFINITION maxLength'])
})

function templates (...list: TemplateDef[]): Map<string, TemplateDef> {
  return new Map(list.map((x) => [x.id, x]))
}

t.test('inheritance merges parents first and lets children refine', async (t) => {
  const r = resolveTemplates(templates(
    { id: 'Base', properties: { online: { type: 'boolean' }, t: { type: 'number', max: 100 } } },
    { id: 'Mid', extends: 'Base', properties: { speed: { type: 'integer' } } },
    { id: 'Leaf', extends: 'Mid', properties: { t: { type: 'number', max: 50, history: true } } }
  ))
  t.same(r.problems, [])
  const leaf = r.resolved.get('Leaf')
  t.same(leaf?.chain, ['Base', 'Mid', 'Leaf'])
  t.same(Object.keys(leaf?.properties ?? {}), ['online', 't', 'speed'])
  t.equal(leaf?.properties.t?.max, 50, 'child refinement wins')
  t.equal(r.resolved.get('Base')?.properties.t?.max, 100, 'parent unchanged')
})

t.test('inheritance detects cycles, unknown parents and type conflicts', async (t) => {
  const r = resolveTemplates(templates(
    { id: 'A', extends: 'B' },
    { id: 'B', extends: 'C' },
    { id: 'C', extends: 'A' },
    { id: 'D', extends: 'A' },
    { id: 'Self', extends: 'Self' },
    { id: 'Orphan', extends: 'Missing' },
    { id: 'P', properties: { x: { type: 'number' } } },
    { id: 'Q', extends: 'P', properties: { x: { type: 'string' } } }
  ))
  const got = r.problems.map((p) => `${p.id} ${p.path} ${p.code}`).sort()
  t.same(got, [
    'A extends ENGINE_TEMPLATE_CYCLE',
    'B extends ENGINE_TEMPLATE_CYCLE',
    'C extends ENGINE_TEMPLATE_CYCLE',
    'Orphan extends ENGINE_UNKNOWN_TEMPLATE',
    'Q properties.x.type ENGINE_PROPERTY_CONFLICT',
    'Self extends ENGINE_TEMPLATE_CYCLE',
  ], 'D (descendant of a cycle) is not reported again')
  t.match(r.problems.find((p) => p.id === 'A')?.message, /A -> B -> C -> A/)
  for (const id of ['A', 'B', 'C', 'D', 'Self', 'Orphan', 'Q']) t.notOk(r.resolved.has(id), `${id} unresolved`)
  t.ok(r.resolved.has('P'))
})
