// The definitions registry: an immutable, versioned snapshot of templates,
// things and rules. Every accepted change batch yields a new snapshot with
// version + 1, so the runtime can put batches in an ordered log and each node
// can say which version it has applied.

import { z } from 'zod'
import { EngineError, type Problem } from '../errors.ts'
import {
  formatPath, resolveTemplates, resolveThingProperties, ruleDefSchema, templateDefSchema, thingDefSchema,
  type EntityProblem, type PropertyDef, type ResolvedTemplate, type RuleDef, type TemplateDef, type ThingDef,
} from '../model/index.ts'
import type { CompiledRule } from '../rules/index.ts'
import { affectedBy, checkConsistency, targetsOf, type Candidate } from './consistency.ts'

export const definitionChangeSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('putTemplate'), template: templateDefSchema }),
  z.strictObject({ op: z.literal('deleteTemplate'), id: z.string() }),
  z.strictObject({ op: z.literal('putThing'), thing: thingDefSchema }),
  z.strictObject({ op: z.literal('deleteThing'), id: z.string() }),
  z.strictObject({ op: z.literal('putRule'), rule: ruleDefSchema }),
  z.strictObject({ op: z.literal('deleteRule'), id: z.string() }),
])
export type DefinitionChange = z.infer<typeof definitionChangeSchema>

/** Everything the thing processor needs about one thing, flattened. */
export interface ResolvedThing {
  readonly id: string
  readonly template: string
  /** Root template first. */
  readonly templateChain: readonly string[]
  readonly definitionsVersion: number
  readonly properties: Readonly<Record<string, PropertyDef>>
  readonly propertyNames: ReadonlySet<string>
  /** Template rules (root first) then the thing's own, each group sorted by id. */
  readonly rules: readonly CompiledRule[]
}

/** JSON form for storage and for shipping a full snapshot to a joining node. */
export interface DefinitionsSnapshot {
  version: number
  templates: TemplateDef[]
  things: ThingDef[]
  rules: RuleDef[]
}

export type ApplyResult =
  | { ok: true, definitions: Definitions }
  | { ok: false, problems: Problem[] }

export interface ApplyOptions {
  /** Reject unless the current version equals this (optimistic concurrency for admin writes). */
  expectedVersion?: number
  /** Maps an entity to the JSON path prefix used in problems; defaults to `changes[i].<kind>` or `templates["id"]`. */
  locate?: (kind: EntityProblem['kind'], id: string) => string
  /** Drops consistency problems the caller already explains another way. */
  keep?: (p: EntityProblem) => boolean
}

type Kind = EntityProblem['kind']

export class Definitions {
  private resolvedCache = new Map<string, ResolvedThing | null>()
  private rulesByOwner: Map<string, string[]> | undefined

  private constructor (
    readonly version: number,
    readonly templates: ReadonlyMap<string, TemplateDef>,
    readonly things: ReadonlyMap<string, ThingDef>,
    readonly rules: ReadonlyMap<string, RuleDef>,
    private readonly compiled: Map<string, CompiledRule>
  ) {}

  static empty (): Definitions {
    return new Definitions(0, new Map(), new Map(), new Map(), new Map())
  }

  /** Rebuilds a snapshot (e.g. loaded from storage), re-validating everything. */
  static fromSnapshot (s: DefinitionsSnapshot): Definitions {
    const changes: DefinitionChange[] = [
      ...s.templates.map((template) => ({ op: 'putTemplate' as const, template })),
      ...s.things.map((thing) => ({ op: 'putThing' as const, thing })),
      ...s.rules.map((rule) => ({ op: 'putRule' as const, rule })),
    ]
    const d = Definitions.empty().apply(changes)
    return new Definitions(s.version, d.templates, d.things, d.rules, d.compiled)
  }

  toSnapshot (): DefinitionsSnapshot {
    return {
      version: this.version,
      templates: [...this.templates.values()],
      things: [...this.things.values()],
      rules: [...this.rules.values()],
    }
  }

  /** Applies a batch all-or-nothing; throws ENGINE_DEFINITIONS_REJECTED (or ENGINE_VERSION_CONFLICT) with every problem. */
  apply (changes: DefinitionChange | readonly DefinitionChange[], options: ApplyOptions = {}): Definitions {
    const r = this.tryApply(changes, options)
    if (r.ok) return r.definitions
    const conflict = r.problems.length === 1 && r.problems[0]?.code === 'ENGINE_VERSION_CONFLICT'
    throw new EngineError(conflict ? 'ENGINE_VERSION_CONFLICT' : 'ENGINE_DEFINITIONS_REJECTED',
      r.problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`)).join('; '),
      { problems: r.problems })
  }

  tryApply (changes: DefinitionChange | readonly DefinitionChange[], options: ApplyOptions = {}): ApplyResult {
    const list: readonly unknown[] = Array.isArray(changes) ? changes : [changes]
    if (options.expectedVersion !== undefined && options.expectedVersion !== this.version) {
      return { ok: false, problems: [{ code: 'ENGINE_VERSION_CONFLICT', path: '', message: `expected version ${options.expectedVersion}, current is ${this.version}` }] }
    }
    const problems: Problem[] = []
    const parsed: DefinitionChange[] = []
    list.forEach((raw, i) => {
      const r = definitionChangeSchema.safeParse(raw)
      if (r.success) parsed.push(r.data)
      else for (const issue of r.error.issues) problems.push({ code: 'ENGINE_INVALID_DEFINITION', path: formatPath([`changes`, i, ...issue.path]), message: issue.message })
    })
    if (problems.length > 0) return { ok: false, problems }

    const templates = new Map(this.templates)
    const things = new Map(this.things)
    const rules = new Map(this.rules)
    const touched = { templates: new Set<string>(), things: new Set<string>(), rules: new Set<string>() }
    const lastIndex = new Map<string, number>()
    const deleted: Array<{ kind: Kind, id: string, index: number }> = []

    parsed.forEach((ch, i) => {
      const del = (kind: Kind, map: Map<string, unknown>, id: string, code: 'ENGINE_UNKNOWN_TEMPLATE' | 'ENGINE_UNKNOWN_THING' | 'ENGINE_UNKNOWN_RULE'): void => {
        if (!map.delete(id)) problems.push({ code, path: `changes[${i}].id`, message: `unknown ${kind} "${id}"` })
        else deleted.push({ kind, id, index: i })
        touched[`${kind}s`].add(id)
      }
      switch (ch.op) {
        case 'putTemplate': templates.set(ch.template.id, deepFreeze(ch.template)); touched.templates.add(ch.template.id); lastIndex.set(`template:${ch.template.id}`, i); break
        case 'putThing': things.set(ch.thing.id, deepFreeze(ch.thing)); touched.things.add(ch.thing.id); lastIndex.set(`thing:${ch.thing.id}`, i); break
        case 'putRule': rules.set(ch.rule.id, deepFreeze(ch.rule)); touched.rules.add(ch.rule.id); lastIndex.set(`rule:${ch.rule.id}`, i); break
        case 'deleteTemplate': del('template', templates, ch.id, 'ENGINE_UNKNOWN_TEMPLATE'); break
        case 'deleteThing': del('thing', things, ch.id, 'ENGINE_UNKNOWN_THING'); break
        case 'deleteRule': del('rule', rules, ch.id, 'ENGINE_UNKNOWN_RULE'); break
      }
    })
    if (problems.length > 0) return { ok: false, problems }

    const candidate: Candidate = { templates, things, rules }
    // Deletions are checked first: "still used by" is the useful message,
    // not the "unknown template" each dependant would otherwise report.
    for (const d of deleted) {
      const users = usersOf(candidate, d.kind, d.id)
      if (users.length > 0) {
        const shown = users.slice(0, 5).join(', ') + (users.length > 5 ? `, and ${users.length - 5} more` : '')
        problems.push({ code: 'ENGINE_IN_USE', path: `changes[${d.index}].id`, message: `${d.kind} "${d.id}" is still used by ${shown}` })
      }
    }
    if (problems.length > 0) return { ok: false, problems }

    const scope = affectedBy(candidate, touched)
    const checked = checkConsistency(candidate, scope)
    const locate = options.locate ?? ((kind: Kind, id: string) => {
      const i = lastIndex.get(`${kind}:${id}`)
      return i === undefined ? `${kind}s[${JSON.stringify(id)}]` : `changes[${i}].${kind}`
    })
    for (const p of checked.problems) if (options.keep === undefined || options.keep(p)) problems.push(toProblem(p, locate))
    if (problems.length > 0) return { ok: false, problems }

    // Compiled rules outside the affected scope are still valid: carry them over.
    const compiled = new Map<string, CompiledRule>()
    for (const [id, rule] of this.compiled) if (!scope.rules.has(id) && rules.has(id)) compiled.set(id, rule)
    for (const [id, rule] of checked.compiled) compiled.set(id, rule)
    return { ok: true, definitions: new Definitions(this.version + 1, templates, things, rules, compiled) }
  }

  /** The flattened view of one thing, or undefined if it does not exist. Cached per snapshot. */
  resolveThing (id: string): ResolvedThing | undefined {
    const cached = this.resolvedCache.get(id)
    if (cached !== undefined) return cached ?? undefined
    const r = this.buildResolved(id)
    this.resolvedCache.set(id, r ?? null)
    return r
  }

  /**
   * Ids of things whose resolved view differs from `older` (added, removed, or
   * any definition they depend on replaced). Unchanged entities keep their
   * object identity across snapshots, so identity comparison is exact.
   */
  changedThingsSince (older: Definitions): string[] {
    const out: string[] = []
    const depsOf = (d: Definitions, id: string): unknown[] | undefined => {
      const th = d.things.get(id)
      if (th === undefined) return undefined
      const deps: unknown[] = [th]
      const owners = d.ownerIndex()
      let t: string | undefined = th.template
      const seen = new Set<string>()
      while (t !== undefined && !seen.has(t)) {
        seen.add(t)
        const tpl = d.templates.get(t)
        deps.push(tpl, ...(owners.get(`template:${t}`) ?? []).sort().map((r) => d.rules.get(r)))
        t = tpl?.extends
      }
      deps.push(...(owners.get(`thing:${id}`) ?? []).sort().map((r) => d.rules.get(r)))
      return deps
    }
    const ids = new Set([...this.things.keys(), ...older.things.keys()])
    for (const id of ids) {
      const a = depsOf(older, id)
      const b = depsOf(this, id)
      if (a === undefined || b === undefined || a.length !== b.length || a.some((x, i) => x !== b[i])) out.push(id)
    }
    return out.sort()
  }

  private buildResolved (id: string): ResolvedThing | undefined {
    const th = this.things.get(id)
    if (th === undefined) return undefined
    // Things of one template share its resolved parts (most things add no
    // properties or rules of their own): 100,000 copies of the same property
    // map and name set were a large share of the engine's memory.
    const shared = this.sharedOf(th.template)
    const ownProps = th.properties !== undefined && Object.keys(th.properties).length > 0
    const properties = ownProps ? Object.freeze(resolveThingProperties(th, shared.tpl).properties) : shared.properties
    const ownRuleIds = [...(this.ownerIndex().get(`thing:${id}`) ?? [])].sort()
    const rules = ownRuleIds.length === 0 ? shared.rules : [...shared.rules, ...ownRuleIds.map((rid) => this.compiledRule(rid))]
    return Object.freeze({
      id,
      template: th.template,
      templateChain: shared.tpl.chain,
      definitionsVersion: this.version,
      properties,
      propertyNames: ownProps ? new Set(Object.keys(properties)) : shared.propertyNames,
      rules,
    })
  }

  private sharedByTemplate = new Map<string, { tpl: ResolvedTemplate, properties: ResolvedThing['properties'], propertyNames: ReadonlySet<string>, rules: ResolvedThing['rules'] }>()

  private sharedOf (template: string): { tpl: ResolvedTemplate, properties: ResolvedThing['properties'], propertyNames: ReadonlySet<string>, rules: ResolvedThing['rules'] } {
    const cached = this.sharedByTemplate.get(template)
    if (cached !== undefined) return cached
    // A stored snapshot is consistent, so resolution cannot fail here.
    const tpl = resolveTemplates(this.templates, [template]).resolved.get(template)
    if (tpl === undefined) throw new EngineError('ENGINE_UNKNOWN_TEMPLATE', `template "${template}" does not resolve`)
    const properties = Object.freeze({ ...tpl.properties })
    const owners = this.ownerIndex()
    const rules = Object.freeze(tpl.chain.flatMap((t) => [...(owners.get(`template:${t}`) ?? [])].sort()).map((rid) => this.compiledRule(rid)))
    const out = { tpl, properties, propertyNames: new Set(Object.keys(properties)), rules }
    this.sharedByTemplate.set(template, out)
    return out
  }

  private compiledRule (rid: string): CompiledRule {
    const c = this.compiled.get(rid)
    if (c === undefined) throw new EngineError('ENGINE_UNKNOWN_RULE', `rule "${rid}" is not compiled`)
    return c
  }

  private ownerIndex (): Map<string, string[]> {
    if (this.rulesByOwner !== undefined) return this.rulesByOwner
    const idx = new Map<string, string[]>()
    for (const r of this.rules.values()) {
      const key = r.template !== undefined ? `template:${r.template}` : `thing:${r.thing ?? ''}`
      const list = idx.get(key) ?? []
      list.push(r.id)
      idx.set(key, list)
    }
    this.rulesByOwner = idx
    return idx
  }
}

function usersOf (c: Candidate, kind: Kind, id: string): string[] {
  const users: string[] = []
  if (kind === 'template') {
    for (const t of c.templates.values()) if (t.extends === id) users.push(`template "${t.id}"`)
    for (const th of c.things.values()) if (th.template === id) users.push(`thing "${th.id}"`)
    for (const r of c.rules.values()) if (r.template === id) users.push(`rule "${r.id}"`)
  } else if (kind === 'thing') {
    for (const r of c.rules.values()) {
      if (r.thing === id) users.push(`rule "${r.id}"`)
      else if (targetsOf(r).includes(id)) users.push(`rule "${r.id}" (setProperty target)`)
    }
  }
  return users
}

export function toProblem (p: EntityProblem, locate: (kind: Kind, id: string) => string): Problem {
  const prefix = locate(p.kind, p.id)
  const path = p.path === '' ? prefix : `${prefix}.${p.path}`
  const out: Problem = { code: p.code, path, message: p.message }
  if (p.position !== undefined) out.position = p.position
  return out
}

function deepFreeze<T> (v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v)
    for (const x of Object.values(v)) deepFreeze(x)
  }
  return v
}
