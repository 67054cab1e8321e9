// One rule pass over a thing: picks the rules this input concerns, evaluates
// their conditions, applies edge/level semantics and turns fired actions into
// effects. Alerts are thing state, so raise/clear are applied here directly.

import { clearAlert, raiseAlert, type AlertRecord } from '../alerts/index.ts'
import type { ResolvedThing } from '../definitions/index.ts'
import { EngineError } from '../errors.ts'
import { evaluateExpression, renderTemplate, truthy, type EvalScope, type ExpressionLimits } from '../expr/index.ts'
import { getOwn, type JsonValue } from '../json.ts'
import type { CompiledAction, CompiledRule } from '../rules/index.ts'
import type { Effect } from './effects.ts'
import type { RuleMemory, ThingState } from './state.ts'

export interface RuleLimits {
  expression: ExpressionLimits
  /** Rule-triggered writes nested deeper than this are dropped with ENGINE_CASCADE_LIMIT. */
  maxCascadeDepth: number
}

export interface RulePass {
  now: number
  /** Properties that counted as changed in this input; empty on ticks. */
  changed: ReadonlySet<string>
  /** True for a scheduled tick: rules with a due schedule are evaluated. */
  tick: boolean
  /** Cascade depth of the input being processed. */
  depth: number
}

export function scopeFor (state: ThingState, def: ResolvedThing, pass: Pick<RulePass, 'now' | 'changed'>): EvalScope {
  return new ThingScope(state, def, pass)
}

// A class rather than an object of closures: one scope is made per rule pass,
// i.e. per device write, and five closures each time were a measurable share
// of the allocations. `thing` is the resolved definition itself (it has `id`
// and `template`; the parser only lets expressions read those two).
class ThingScope implements EvalScope {
  readonly now: number
  readonly thing: { id: string, template: string }
  constructor (private readonly state: ThingState, def: ResolvedThing, private readonly pass: Pick<RulePass, 'now' | 'changed'>) {
    this.now = pass.now
    this.thing = def
  }

  value (n: string): JsonValue { return getOwn(this.state.properties, n)?.current.value ?? null }
  prev (n: string): JsonValue { return getOwn(this.state.properties, n)?.prev?.value ?? null }
  changed (n: string): boolean { return this.pass.changed.has(n) }
  age (n: string): number | null {
    const at = getOwn(this.state.properties, n)?.changedAt
    return at === undefined ? null : this.pass.now - at
  }

  quality (n: string): string | null { return getOwn(this.state.properties, n)?.current.quality ?? null }
}

function isDue (rule: CompiledRule, mem: RuleMemory | undefined, now: number): boolean {
  if (rule.everyMs === undefined) return false
  const last = mem?.lastScheduledAt
  return last === undefined || now - last >= rule.everyMs
}

/** Earliest time a scheduled rule of this thing is due, or undefined if none is scheduled. */
export function nextDueAt (state: ThingState, def: ResolvedThing): number | undefined {
  let next: number | undefined
  for (const r of def.rules) {
    if (!r.enabled || r.everyMs === undefined) continue
    const last = getOwn(state.rules, r.id)?.lastScheduledAt
    const due = last === undefined ? Number.NEGATIVE_INFINITY : last + r.everyMs
    if (next === undefined || due < next) next = due
  }
  return next
}

/** A new rule memory with what `m` holds (`lastEvalAt` of older releases is not carried on). */
function copyMemory (m: RuleMemory | undefined): RuleMemory {
  if (m === undefined) return { active: false }
  const c: RuleMemory = { active: m.active }
  if (m.lastScheduledAt !== undefined) c.lastScheduledAt = m.lastScheduledAt
  if (m.lastFiredAt !== undefined) c.lastFiredAt = m.lastFiredAt
  return c
}

/** `inPlace`: replace entries of the state's rule and alert maps instead of copying them (the caller owns the state). */
/** `memoryChanged`: a rule memory or an alert was replaced. */
export function runRules (state: ThingState, def: ResolvedThing, pass: RulePass, limits: RuleLimits, inPlace = false): { state: ThingState, effects: Effect[], memoryChanged: boolean } {
  const effects: Effect[] = []
  let memoryChanged = false
  let rules: Record<string, RuleMemory> | undefined = inPlace ? state.rules : undefined
  let alerts: Record<string, AlertRecord> | undefined = inPlace ? state.alerts : undefined
  const scope = scopeFor(state, def, pass)

  for (const rule of def.rules) {
    if (!rule.enabled) continue
    const mem = getOwn(rules ?? state.rules, rule.id)
    let byChange = false
    for (const p of pass.changed) if (rule.triggers.has(p)) { byChange = true; break }
    const byTick = pass.tick && isDue(rule, mem, pass.now)
    if (!byChange && !byTick) continue

    // The memory is replaced only when it changes (a scheduled evaluation, an
    // edge, a firing): an evaluation with the same outcome writes nothing.
    let next: RuleMemory | undefined = byTick ? { ...copyMemory(mem), lastScheduledAt: pass.now } : undefined
    let result: boolean
    try {
      result = truthy(evaluateExpression(rule.condition, scope, limits.expression))
    } catch (e) {
      const err = e as EngineError
      effects.push({ type: 'ruleError', thingId: def.id, ruleId: rule.id, code: err.code, message: `when: ${err.message}` })
      // Edge memory is left as it was: a transient error must neither fire
      // nor reset the rule.
      if (next !== undefined) {
        rules ??= { ...state.rules }
        rules[rule.id] = next
        memoryChanged = true
      }
      continue
    }
    const wasActive = mem?.active ?? false
    let fire: readonly CompiledAction[] = []
    if (result && (rule.trigger === 'level' || !wasActive)) fire = rule.actions
    else if (!result && wasActive) fire = rule.resetActions
    const fired = result && fire === rule.actions && fire.length > 0
    if (next !== undefined || result !== wasActive || fired) {
      next ??= copyMemory(mem)
      next.active = result
      if (fired) next.lastFiredAt = pass.now
      rules ??= { ...state.rules }
      rules[rule.id] = next
      memoryChanged = true
    }

    for (const action of fire) {
      try {
        const out = performAction(action, rule, def, scope, pass, limits, getOwn(alerts ?? state.alerts, actionAlertName(action) ?? ''))
        if (out.alert !== undefined) {
          alerts ??= { ...state.alerts }
          alerts[out.alert.name] = out.alert
          memoryChanged = true
        }
        effects.push(...out.effects)
      } catch (e) {
        const err = e as EngineError
        effects.push({ type: 'ruleError', thingId: def.id, ruleId: rule.id, code: err.code, message: `${action.type}: ${err.message}` })
      }
    }
  }
  if (inPlace) return { state, effects, memoryChanged }
  let out = state
  if (rules !== undefined) out = { ...out, rules }
  if (alerts !== undefined) out = { ...out, alerts }
  return { state: out, effects, memoryChanged }
}

function actionAlertName (a: CompiledAction): string | undefined {
  return a.type === 'raiseAlert' || a.type === 'clearAlert' ? a.alert : undefined
}

function performAction (
  action: CompiledAction,
  rule: CompiledRule,
  def: ResolvedThing,
  scope: EvalScope,
  pass: RulePass,
  limits: RuleLimits,
  currentAlert: AlertRecord | undefined
): { effects: Effect[], alert?: AlertRecord } {
  switch (action.type) {
    case 'setProperty': {
      const depth = pass.depth + 1
      if (depth > limits.maxCascadeDepth) {
        throw new EngineError('ENGINE_CASCADE_LIMIT', `rule-triggered writes nested deeper than ${limits.maxCascadeDepth}; dropped`)
      }
      return { effects: [{ type: 'setProperty', thingId: action.thing ?? def.id, property: action.property, value: renderTemplate(action.value, scope, limits.expression), ruleId: rule.id, sourceThingId: def.id, depth }] }
    }
    case 'publish': {
      const topic = renderTemplate(action.topic, scope, limits.expression)
      checkTopic(topic)
      return { effects: [{ type: 'publish', thingId: def.id, ruleId: rule.id, topic: topic as string, payload: action.payload === undefined ? null : renderTemplate(action.payload, scope, limits.expression), qos: action.qos, retain: action.retain }] }
    }
    case 'raiseAlert': {
      const message = action.message === undefined ? undefined : renderTemplate(action.message, scope, limits.expression)
      const r = raiseAlert(currentAlert, action.alert, {
        severity: action.severity,
        ruleId: rule.id,
        ...(message === undefined ? {} : { message: typeof message === 'string' ? message : JSON.stringify(message) }),
      }, pass.now)
      // raiseAlert never fails; the guard keeps the types honest.
      if (!r.ok || r.transition === null) return { effects: [] }
      return { alert: r.record, effects: [{ type: 'alert', thingId: def.id, transition: r.transition, alert: r.record }] }
    }
    case 'clearAlert': {
      const r = clearAlert(currentAlert, pass.now)
      if (r.transition === null || r.record === undefined) return { effects: [] }
      return { alert: r.record, effects: [{ type: 'alert', thingId: def.id, transition: r.transition, alert: r.record }] }
    }
    case 'emitEvent':
      return { effects: [{ type: 'event', thingId: def.id, ruleId: rule.id, event: action.event, payload: action.payload === undefined ? null : renderTemplate(action.payload, scope, limits.expression), ts: pass.now }] }
  }
}

// Rules publish as ordinary clients would: never to system topics, never to
// a filter. [MQTT-3.3.2-2]: PUBLISH topic names must not contain wildcards.
function checkTopic (topic: JsonValue): void {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > 1024) {
    throw new EngineError('ENGINE_EVAL_TYPE', 'topic must render to a non-empty string of at most 1024 characters')
  }
  if (topic.startsWith('$')) throw new EngineError('ENGINE_EVAL_FORBIDDEN', `topic "${topic.slice(0, 64)}" is reserved ($ prefix)`)
  if (/[+#\u0000]/.test(topic)) throw new EngineError('ENGINE_EVAL_FORBIDDEN', `topic "${topic.slice(0, 64)}" contains a wildcard or NUL`)
}
