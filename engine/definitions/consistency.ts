// Cross-entity checks over a candidate set of definitions: inheritance,
// references between things, templates and rules, rule compilation. Checks
// run only over the entities a change can affect, so adding one thing to a
// registry of many does not recompile every rule.

import type { EntityProblem, PropertyDef, ResolvedTemplate, RuleDef, TemplateDef, ThingDef } from '../model/index.ts'
import { checkPropertyDef, resolveTemplates, resolveThingProperties } from '../model/index.ts'
import { compileRule, type CompiledRule, type RuleCompileContext } from '../rules/index.ts'

export interface Candidate {
  templates: ReadonlyMap<string, TemplateDef>
  things: ReadonlyMap<string, ThingDef>
  rules: ReadonlyMap<string, RuleDef>
}

export interface Scope {
  templates: ReadonlySet<string>
  things: ReadonlySet<string>
  rules: ReadonlySet<string>
}

/** Widens touched ids to everything whose validity may depend on them. */
export function affectedBy (c: Candidate, touched: Scope): Scope {
  const templates = new Set(touched.templates)
  // Descendants: repeat until no template's parent is in the set. Template
  // counts are small; things and rules are scanned once each.
  let grew = true
  while (grew) {
    grew = false
    for (const t of c.templates.values()) {
      if (!templates.has(t.id) && t.extends !== undefined && templates.has(t.extends)) {
        templates.add(t.id)
        grew = true
      }
    }
  }
  const things = new Set(touched.things)
  for (const th of c.things.values()) if (templates.has(th.template)) things.add(th.id)
  const rules = new Set(touched.rules)
  for (const r of c.rules.values()) {
    if ((r.template !== undefined && templates.has(r.template)) || (r.thing !== undefined && things.has(r.thing))) rules.add(r.id)
    else if (targetsOf(r).some((t) => things.has(t))) rules.add(r.id)
  }
  return { templates, things, rules }
}

export function targetsOf (r: RuleDef): string[] {
  const out: string[] = []
  for (const a of [...r.actions, ...(r.resetActions ?? [])]) if (a.type === 'setProperty' && a.thing !== undefined) out.push(a.thing)
  return out
}

export function propertyProblems (kind: 'template' | 'thing', id: string, props: Readonly<Record<string, PropertyDef>> | undefined): EntityProblem[] {
  const out: EntityProblem[] = []
  for (const [name, def] of Object.entries(props ?? {})) {
    for (const p of checkPropertyDef(def)) {
      out.push({ kind, id, path: `properties.${name}.${p.path}`, code: p.code, message: p.message })
    }
  }
  return out
}

/** Resolves a thing's property table; undefined if its template does not resolve. */
export function thingProperties (
  c: Candidate,
  thingId: string,
  resolved: ReadonlyMap<string, ResolvedTemplate>
): Record<string, PropertyDef> | undefined {
  const th = c.things.get(thingId)
  if (th === undefined) return undefined
  const tpl = resolved.get(th.template)
  if (tpl === undefined) return undefined
  return resolveThingProperties(th, tpl).properties
}

export function ruleContext (
  c: Candidate,
  rule: RuleDef,
  resolved: ReadonlyMap<string, ResolvedTemplate>
): RuleCompileContext | undefined {
  let own: Record<string, PropertyDef> | undefined
  if (rule.template !== undefined) own = resolved.get(rule.template)?.properties
  else if (rule.thing !== undefined) own = thingProperties(c, rule.thing, resolved)
  if (own === undefined) return undefined
  return {
    properties: new Set(Object.keys(own)),
    thingProperties: (id) => {
      const p = thingProperties(c, id, resolved)
      return p === undefined ? undefined : new Set(Object.keys(p))
    },
  }
}

/** All problems of the entities in `scope`; compiled rules are returned for reuse. */
export function checkConsistency (c: Candidate, scope: Scope): { problems: EntityProblem[], compiled: Map<string, CompiledRule> } {
  const problems: EntityProblem[] = []
  const compiled = new Map<string, CompiledRule>()
  const needed = new Set<string>(scope.templates)
  for (const id of scope.things) {
    const th = c.things.get(id)
    if (th !== undefined) needed.add(th.template)
  }
  for (const id of scope.rules) {
    const r = c.rules.get(id)
    if (r?.template !== undefined) needed.add(r.template)
    if (r?.thing !== undefined) {
      const th = c.things.get(r.thing)
      if (th !== undefined) needed.add(th.template)
    }
    for (const t of r === undefined ? [] : targetsOf(r)) {
      const th = c.things.get(t)
      if (th !== undefined) needed.add(th.template)
    }
  }
  const resolution = resolveTemplates(c.templates, needed)
  const resolved = resolution.resolved
  for (const p of resolution.problems) if (scope.templates.has(p.id)) problems.push(p)

  for (const id of scope.templates) {
    const t = c.templates.get(id)
    if (t !== undefined) problems.push(...propertyProblems('template', id, t.properties))
  }

  for (const id of scope.things) {
    const th = c.things.get(id)
    if (th === undefined) continue
    problems.push(...propertyProblems('thing', id, th.properties))
    if (!c.templates.has(th.template)) {
      problems.push({ kind: 'thing', id, path: 'template', code: 'ENGINE_UNKNOWN_TEMPLATE', message: `unknown template "${th.template}"`, ref: th.template })
      continue
    }
    const tpl = resolved.get(th.template)
    // A template that does not resolve is reported on the template itself.
    if (tpl !== undefined) problems.push(...resolveThingProperties(th, tpl).problems)
  }

  for (const id of scope.rules) {
    const r = c.rules.get(id)
    if (r === undefined) continue
    if ((r.template === undefined) === (r.thing === undefined)) {
      problems.push({ kind: 'rule', id, path: '', code: 'ENGINE_INVALID_DEFINITION', message: 'a rule needs exactly one owner: "template" or "thing"' })
      continue
    }
    if (r.template !== undefined && !c.templates.has(r.template)) {
      problems.push({ kind: 'rule', id, path: 'template', code: 'ENGINE_UNKNOWN_TEMPLATE', message: `unknown template "${r.template}"`, ref: r.template })
      continue
    }
    if (r.thing !== undefined && !c.things.has(r.thing)) {
      problems.push({ kind: 'rule', id, path: 'thing', code: 'ENGINE_UNKNOWN_THING', message: `unknown thing "${r.thing}"`, ref: r.thing })
      continue
    }
    const ctx = ruleContext(c, r, resolved)
    if (ctx === undefined) continue // owner broken; reported on the owner
    const result = compileRule(r, ctx)
    if (result.ok) compiled.set(id, result.rule)
    else for (const p of result.problems) problems.push({ kind: 'rule', id, ...p })
  }
  return { problems, compiled }
}
