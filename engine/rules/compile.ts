// Turns a RuleDef into a CompiledRule: condition and action templates parsed
// once against the owner's property set, so evaluation never re-parses and a
// rule that references a missing property is rejected at definition time.

import { EngineError, type EngineErrorCode, type SourcePosition } from '../errors.ts'
import {
  compileExpression, compileJsonTemplate, compileStringTemplate,
  type CompiledExpression, type CompiledTemplate, type ExpressionLimits,
} from '../expr/index.ts'
import type { ActionDef, RuleDef, Severity } from '../model/index.ts'

export type CompiledAction =
  | { type: 'setProperty', thing?: string, property: string, value: CompiledTemplate }
  | { type: 'publish', topic: CompiledTemplate, payload?: CompiledTemplate, qos: 0 | 1 | 2, retain: boolean }
  | { type: 'raiseAlert', alert: string, severity: Severity, message?: CompiledTemplate }
  | { type: 'clearAlert', alert: string }
  | { type: 'emitEvent', event: string, payload?: CompiledTemplate }

export interface CompiledRule {
  readonly id: string
  readonly enabled: boolean
  readonly trigger: 'edge' | 'level'
  readonly condition: CompiledExpression
  /** A change of any of these re-evaluates the rule. */
  readonly triggers: ReadonlySet<string>
  readonly everyMs?: number
  readonly actions: readonly CompiledAction[]
  readonly resetActions: readonly CompiledAction[]
}

export interface RuleCompileProblem {
  /** Path inside the rule (`when`, `actions[1].payload.msg`). */
  path: string
  code: EngineErrorCode
  message: string
  position?: SourcePosition
  /** For unknown-reference problems: the id that was not found. */
  ref?: string
}

export interface RuleCompileContext {
  /** Properties of the rule's owner (template or thing). */
  properties: ReadonlySet<string>
  /** Properties of another thing targeted by setProperty; undefined if it does not exist. */
  thingProperties: (thingId: string) => ReadonlySet<string> | undefined
  limits?: Partial<ExpressionLimits>
}

export type RuleCompileResult =
  | { ok: true, rule: CompiledRule }
  | { ok: false, problems: RuleCompileProblem[] }

export function compileRule (def: RuleDef, ctx: RuleCompileContext): RuleCompileResult {
  const problems: RuleCompileProblem[] = []
  const opts = { properties: ctx.properties, ...(ctx.limits === undefined ? {} : { limits: ctx.limits }) }

  const attempt = <T>(path: string, f: () => T): T | undefined => {
    try {
      return f()
    } catch (e) {
      if (!(e instanceof EngineError)) throw e
      const full = e.path === undefined || e.path === '' ? path : `${path}${e.path.startsWith('[') ? '' : '.'}${e.path}`
      const p: RuleCompileProblem = { path: full, code: e.code, message: e.message }
      if (e.position !== undefined) p.position = e.position
      problems.push(p)
      return undefined
    }
  }

  const condition = attempt('when', () => compileExpression(def.when, opts))

  const triggers = new Set<string>(def.on ?? condition?.references.properties ?? [])
  def.on?.forEach((name, i) => {
    if (!ctx.properties.has(name)) problems.push({ path: `on[${i}]`, code: 'ENGINE_UNKNOWN_PROPERTY', message: `unknown property "${name}"` })
  })
  if (condition !== undefined && triggers.size === 0 && def.everySeconds === undefined) {
    problems.push({ path: 'when', code: 'ENGINE_RULE_NEVER_TRIGGERED', message: 'condition reads no property and the rule has no everySeconds schedule, so it would never be evaluated' })
  }

  const compileActions = (list: readonly ActionDef[], base: string): CompiledAction[] =>
    list.flatMap((a, i) => {
      const c = compileAction(a, `${base}[${i}]`, ctx, opts, attempt, problems)
      return c === undefined ? [] : [c]
    })
  const actions = compileActions(def.actions, 'actions')
  const resetActions = compileActions(def.resetActions ?? [], 'resetActions')

  if (problems.length > 0 || condition === undefined) return { ok: false, problems }
  const rule: CompiledRule = {
    id: def.id,
    enabled: def.enabled ?? true,
    trigger: def.trigger ?? 'edge',
    condition,
    triggers,
    ...(def.everySeconds === undefined ? {} : { everyMs: def.everySeconds * 1000 }),
    actions,
    resetActions,
  }
  return { ok: true, rule }
}

function compileAction (
  a: ActionDef,
  path: string,
  ctx: RuleCompileContext,
  opts: { properties: ReadonlySet<string>, limits?: Partial<ExpressionLimits> },
  attempt: <T>(path: string, f: () => T) => T | undefined,
  problems: RuleCompileProblem[]
): CompiledAction | undefined {
  switch (a.type) {
    case 'setProperty': {
      const targetProps = a.thing === undefined ? ctx.properties : ctx.thingProperties(a.thing)
      if (targetProps === undefined) {
        problems.push({ path: `${path}.thing`, code: 'ENGINE_UNKNOWN_THING', message: `unknown thing "${a.thing ?? ''}"`, ref: a.thing ?? '' })
      } else if (!targetProps.has(a.property)) {
        problems.push({ path: `${path}.property`, code: 'ENGINE_UNKNOWN_PROPERTY', message: `unknown property "${a.property}"${a.thing === undefined ? '' : ` on thing "${a.thing}"`}` })
      }
      const value = attempt(`${path}.value`, () => compileJsonTemplate(a.value, opts))
      if (value === undefined) return undefined
      return { type: 'setProperty', ...(a.thing === undefined ? {} : { thing: a.thing }), property: a.property, value }
    }
    case 'publish': {
      const topic = attempt(`${path}.topic`, () => compileStringTemplate(a.topic, opts))
      // Wildcards and `$` prefixes are checked on the rendered topic at run
      // time; a static prefix is checked here so obvious mistakes fail early.
      if (a.topic.startsWith('$') && !a.topic.startsWith('${')) {
        problems.push({ path: `${path}.topic`, code: 'ENGINE_INVALID_DEFINITION', message: 'rules may not publish to $ topics (reserved for the system)' })
      }
      const payload = a.payload === undefined ? undefined : attempt(`${path}.payload`, () => compileJsonTemplate(a.payload as Parameters<typeof compileJsonTemplate>[0], opts))
      if (topic === undefined || (a.payload !== undefined && payload === undefined)) return undefined
      return { type: 'publish', topic, ...(payload === undefined ? {} : { payload }), qos: a.qos ?? 0, retain: a.retain ?? false }
    }
    case 'raiseAlert': {
      const message = a.message === undefined ? undefined : attempt(`${path}.message`, () => compileStringTemplate(a.message as string, opts))
      if (a.message !== undefined && message === undefined) return undefined
      return { type: 'raiseAlert', alert: a.alert, severity: a.severity ?? 'warning', ...(message === undefined ? {} : { message }) }
    }
    case 'clearAlert':
      return { type: 'clearAlert', alert: a.alert }
    case 'emitEvent': {
      const payload = a.payload === undefined ? undefined : attempt(`${path}.payload`, () => compileJsonTemplate(a.payload as Parameters<typeof compileJsonTemplate>[0], opts))
      if (a.payload !== undefined && payload === undefined) return undefined
      return { type: 'emitEvent', event: a.event, ...(payload === undefined ? {} : { payload }) }
    }
  }
}
