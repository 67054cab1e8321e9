// Module bundles: `{ version: 1, templates, things, rules }` imported as one
// all-or-nothing upsert. Validation reports every problem with its JSON path
// into the bundle; nothing is applied unless there are none.

import { EngineError, type Problem } from '../errors.ts'
import { isPlainObject, parseJson } from '../json.ts'
import { formatPath, ruleDefSchema, templateDefSchema, thingDefSchema, type EntityProblem } from '../model/index.ts'
import { Definitions, type DefinitionChange } from './registry.ts'

export const SUPPORTED_MODULE_VERSIONS: readonly number[] = [1]

export type ModuleValidation =
  | { ok: true, changes: DefinitionChange[], definitions: Definitions }
  | { ok: false, problems: Problem[] }

const SECTIONS = [
  { key: 'templates', kind: 'template', schema: templateDefSchema, op: 'putTemplate' },
  { key: 'things', kind: 'thing', schema: thingDefSchema, op: 'putThing' },
  { key: 'rules', kind: 'rule', schema: ruleDefSchema, op: 'putRule' },
] as const

/**
 * Validates `bundle` on top of `existing` (templates may extend, and things use,
 * already defined templates). On success also returns the resulting snapshot,
 * so validating and applying are the same computation.
 */
export function validateModule (bundle: unknown, existing: Definitions = Definitions.empty()): ModuleValidation {
  const problems: Problem[] = []
  if (!isPlainObject(bundle)) {
    return { ok: false, problems: [{ code: 'ENGINE_INVALID_DEFINITION', path: '', message: 'a module bundle must be a JSON object' }] }
  }
  if (!Object.hasOwn(bundle, 'version') || typeof bundle.version !== 'number' || !SUPPORTED_MODULE_VERSIONS.includes(bundle.version)) {
    // Nothing else is checked: a different version may mean a different shape.
    return { ok: false, problems: [{ code: 'ENGINE_UNSUPPORTED_VERSION', path: 'version', message: `unsupported module version ${JSON.stringify(bundle.version) ?? 'undefined'}; supported: ${SUPPORTED_MODULE_VERSIONS.join(', ')}` }] }
  }
  for (const key of Object.keys(bundle)) {
    if (key !== 'version' && !SECTIONS.some((s) => s.key === key)) {
      problems.push({ code: 'ENGINE_INVALID_DEFINITION', path: formatPath([key]), message: 'unknown field' })
    }
  }

  const changes: DefinitionChange[] = []
  const where = new Map<string, string>() // "kind:id" -> "things[3]"
  // Ids declared by elements that failed the shape check: references to them
  // are not reported again as "unknown", the element's own problem explains it.
  const invalidIds = new Set<string>()

  for (const section of SECTIONS) {
    const raw = Object.hasOwn(bundle, section.key) ? bundle[section.key] : undefined
    if (raw === undefined) continue
    if (!Array.isArray(raw)) {
      problems.push({ code: 'ENGINE_INVALID_DEFINITION', path: section.key, message: 'must be an array' })
      continue
    }
    raw.forEach((item: unknown, i: number) => {
      const base = `${section.key}[${i}]`
      const parsed = section.schema.safeParse(item)
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          problems.push({ code: 'ENGINE_INVALID_DEFINITION', path: formatPath([section.key, i, ...issue.path]), message: issue.message })
        }
        if (isPlainObject(item) && typeof item.id === 'string') invalidIds.add(`${section.kind}:${item.id}`)
        return
      }
      const id = parsed.data.id
      const key = `${section.kind}:${id}`
      const first = where.get(key)
      if (first !== undefined) {
        problems.push({ code: 'ENGINE_DUPLICATE_ID', path: `${base}.id`, message: `duplicate ${section.kind} id "${id}" (first declared at ${first})` })
        return
      }
      where.set(key, base)
      // Each section's schema is exactly the payload type of its op.
      changes.push({ op: section.op, [section.kind]: parsed.data } as DefinitionChange)
    })
  }

  const keep = (p: EntityProblem): boolean => {
    if (p.ref === undefined) return true
    const refKind = p.code === 'ENGINE_UNKNOWN_THING' ? 'thing' : 'template'
    return !invalidIds.has(`${refKind}:${p.ref}`)
  }
  const locate = (kind: EntityProblem['kind'], id: string): string => where.get(`${kind}:${id}`) ?? `(existing ${kind} "${id}")`
  const result = existing.tryApply(changes, { locate, keep })
  if (!result.ok) problems.push(...result.problems)
  if (!result.ok || problems.length > 0) return { ok: false, problems: sortProblems(problems) }
  return { ok: true, changes, definitions: result.definitions }
}

/** Parses bundle text then validates it; bad JSON is one ENGINE_BAD_JSON problem. */
export function validateModuleText (text: string, existing?: Definitions): ModuleValidation {
  const parsed = parseJson(text)
  if (!parsed.ok) return { ok: false, problems: [{ code: 'ENGINE_BAD_JSON', path: '', message: parsed.message }] }
  return validateModule(parsed.value, existing)
}

/** Validates and returns the new snapshot; throws ENGINE_DEFINITIONS_REJECTED with every problem. */
export function importModule (bundle: unknown, existing: Definitions = Definitions.empty()): Definitions {
  const r = validateModule(bundle, existing)
  if (r.ok) return r.definitions
  throw new EngineError('ENGINE_DEFINITIONS_REJECTED', `module rejected with ${r.problems.length} problem(s): ${r.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`, { problems: r.problems })
}

// Bundle order (templates, things, rules; then index) keeps reports readable
// and stable across runs.
function sortProblems (problems: Problem[]): Problem[] {
  const rank = (path: string): [number, number] => {
    const m = /^(templates|things|rules)\[(\d+)\]/.exec(path)
    if (m === null) return [path.startsWith('(existing') ? 4 : -1, 0]
    return [['templates', 'things', 'rules'].indexOf(m[1] as string), Number(m[2])]
  }
  return problems
    .map((p, i) => ({ p, i, r: rank(p.path) }))
    .sort((a, b) => a.r[0] - b.r[0] || a.r[1] - b.r[1] || a.i - b.i)
    .map((x) => x.p)
}
