// Template inheritance: flattens `extends` chains into one property table per
// template and applies a thing's own properties on top. A child may refine an
// inherited property (range, default, policy) but not change its type: rules
// and stored values written against the parent's type would break.

import type { EngineErrorCode } from '../errors.ts'
import { getOwn } from '../json.ts'
import type { PropertyDef, TemplateDef, ThingDef } from './schema.ts'

export interface ResolvedTemplate {
  readonly id: string
  /** Root first, this template last. */
  readonly chain: readonly string[]
  readonly properties: Readonly<Record<string, PropertyDef>>
}

/** A problem tied to one entity; the caller turns it into a JSON path. */
export interface EntityProblem {
  kind: 'template' | 'thing' | 'rule'
  id: string
  /** Path inside the entity, e.g. `extends` or `properties.temperature.type`. */
  path: string
  code: EngineErrorCode
  message: string
  position?: { offset: number, line: number, column: number }
  /** For unknown-reference problems: the id that was not found. */
  ref?: string
}

export interface TemplateResolution {
  resolved: Map<string, ResolvedTemplate>
  problems: EntityProblem[]
}

/**
 * Resolves every template in `templates`. Templates that cannot be resolved
 * (cycle, unknown ancestor, conflict) are absent from `resolved`; only the
 * root cause is reported, not every descendant of a broken template.
 */
export function resolveTemplates (templates: ReadonlyMap<string, TemplateDef>, only?: Iterable<string>): TemplateResolution {
  const resolved = new Map<string, ResolvedTemplate>()
  const failed = new Set<string>()
  const problems: EntityProblem[] = []
  const reported = new Set<string>()

  const resolveOne = (id: string): ResolvedTemplate | undefined => {
    const done = resolved.get(id)
    if (done !== undefined) return done
    if (failed.has(id)) return undefined
    // Walk up iteratively to find the chain; a cycle shows up as a repeat.
    const chain: string[] = []
    const seen = new Set<string>()
    let cur: string | undefined = id
    while (cur !== undefined) {
      if (seen.has(cur)) {
        const cycle = [...chain.slice(chain.indexOf(cur)), cur]
        for (const member of chain.slice(chain.indexOf(cur))) {
          failed.add(member)
          if (!reported.has(member)) {
            reported.add(member)
            problems.push({ kind: 'template', id: member, path: 'extends', code: 'ENGINE_TEMPLATE_CYCLE', message: `inheritance cycle ${cycle.join(' -> ')}` })
          }
        }
        for (const t of chain) failed.add(t)
        return undefined
      }
      const ready = resolved.get(cur)
      if (ready !== undefined || failed.has(cur)) break
      seen.add(cur)
      chain.push(cur)
      const def = templates.get(cur) as TemplateDef
      const parent: string | undefined = def.extends
      if (parent !== undefined && !templates.has(parent)) {
        failed.add(cur)
        problems.push({ kind: 'template', id: cur, path: 'extends', code: 'ENGINE_UNKNOWN_TEMPLATE', message: `unknown template "${parent}"`, ref: parent })
        for (const t of chain) failed.add(t)
        return undefined
      }
      cur = parent
    }
    // `cur` is now an already-resolved (or failed) ancestor, or undefined at a root.
    let base: ResolvedTemplate | undefined
    if (cur !== undefined) {
      if (failed.has(cur)) {
        for (const t of chain) failed.add(t)
        return undefined
      }
      base = resolved.get(cur)
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const tid = chain[i] as string
      const def = templates.get(tid) as TemplateDef
      const merged = mergeProperties(base?.properties ?? {}, def.properties ?? {}, (name, message) => {
        problems.push({ kind: 'template', id: tid, path: `properties.${name}.type`, code: 'ENGINE_PROPERTY_CONFLICT', message })
      })
      if (merged === undefined) {
        for (const t of chain.slice(0, i + 1)) failed.add(t)
        return undefined
      }
      base = { id: tid, chain: [...(base?.chain ?? []), tid], properties: Object.freeze(merged) }
      resolved.set(tid, base)
    }
    return base
  }

  for (const id of only ?? templates.keys()) if (templates.has(id)) resolveOne(id)
  return { resolved, problems }
}

function mergeProperties (
  base: Readonly<Record<string, PropertyDef>>,
  own: Readonly<Record<string, PropertyDef>>,
  conflict: (name: string, message: string) => void
): Record<string, PropertyDef> | undefined {
  const out: Record<string, PropertyDef> = { ...base }
  let ok = true
  for (const [name, def] of Object.entries(own)) {
    const inherited = getOwn(base, name)
    if (inherited !== undefined && inherited.type !== def.type) {
      conflict(name, `redeclares inherited property "${name}" as ${def.type} (inherited type is ${inherited.type})`)
      ok = false
      continue
    }
    out[name] = def
  }
  return ok ? out : undefined
}

/** Properties of a thing: its template's plus its own (same type rule as templates). */
export function resolveThingProperties (
  thing: ThingDef,
  template: ResolvedTemplate
): { properties: Record<string, PropertyDef>, problems: EntityProblem[] } {
  const problems: EntityProblem[] = []
  const merged = mergeProperties(template.properties, thing.properties ?? {}, (name, message) => {
    problems.push({ kind: 'thing', id: thing.id, path: `properties.${name}.type`, code: 'ENGINE_PROPERTY_CONFLICT', message })
  })
  return { properties: merged ?? { ...template.properties }, problems }
}
