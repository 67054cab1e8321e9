// The thing processor: (state, definition, input, now) -> (state, effects).
// It is a pure function of its arguments: no clock, no randomness, iteration
// in definition order. The runtime gets exactly-once behaviour by logging
// inputs, processing them in log order and, after a crash, replaying from the
// last stored state; the replay yields the same state and effects, and the
// effects carry `seq` / ids the runtime can deduplicate on.

import { acknowledgeAlert, clearAlert } from '../alerts/index.ts'
import type { ResolvedThing } from '../definitions/index.ts'
import type { EngineErrorCode } from '../errors.ts'
import { DEFAULT_EXPRESSION_LIMITS, type ExpressionLimits } from '../expr/index.ts'
import { getOwn, jsonEqual, type JsonValue } from '../json.ts'
import { checkValue, DEFAULT_VALUE_LIMITS, type ValueLimits } from '../model/index.ts'
import { computeDelta, setDesired } from '../shadow/index.ts'
import type { Effect } from './effects.ts'
import { runRules } from './run-rules.ts'
import { cloneState, markHeadChanged, type Sample, type ThingState } from './state.ts'
import { applyWrite, type RawWrite } from './write.ts'

export type WriteSource = 'device' | 'app' | 'rule'

export type ThingInput =
  | ({ type: 'write', source?: WriteSource, depth?: number } & RawWrite)
  /** Scheduled evaluation; the runtime sends it at or after nextDueAt(). */
  | { type: 'tick' }
  /** Application sets desired values (null removes one); refused if expectedVersion is stale. */
  | { type: 'setDesired', patch: Record<string, JsonValue | null>, expectedVersion?: number }
  | { type: 'ackAlert', alert: string, by?: string }
  | { type: 'clearAlert', alert: string, by?: string }

export interface ProcessorLimits {
  expression: ExpressionLimits
  values: ValueLimits
  maxCascadeDepth: number
}

export const DEFAULT_PROCESSOR_LIMITS: Readonly<ProcessorLimits> = Object.freeze({
  expression: DEFAULT_EXPRESSION_LIMITS,
  values: DEFAULT_VALUE_LIMITS,
  maxCascadeDepth: 8,
})

export interface ProcessContext {
  /** Processing time, epoch ms; recorded with the input in the log so replays see the same value. */
  now: number
  limits?: Partial<ProcessorLimits>
  /**
   * Update `state` itself and return it, instead of a new state. For a
   * caller that owns the state (the partition owner's cache, which is
   * dropped when a commit fails): copying a thing's state on every input
   * promoted every copy to the old generation, which the major collections
   * then had to mark and sweep. Entries of the state's maps are replaced,
   * never changed, so a state taken before (cloneState) is unaffected.
   */
  inPlace?: boolean
}

export interface Rejection {
  code: EngineErrorCode
  property?: string
  message: string
}

export interface ProcessResult {
  state: ThingState
  effects: Effect[]
  /** Parts of the input that were refused, for the reply to whoever sent it. */
  rejections: Rejection[]
  /** Properties whose state was replaced (counted or not): what a store must write. */
  written: string[]
}

const NOTHING_CHANGED: ReadonlySet<string> = new Set()

export function processInput (state: ThingState, def: ResolvedThing, input: ThingInput, ctx: ProcessContext): ProcessResult {
  const limits: ProcessorLimits = ctx.limits === undefined ? DEFAULT_PROCESSOR_LIMITS : { ...DEFAULT_PROCESSOR_LIMITS, ...ctx.limits }
  const now = ctx.now
  // The delta before the input, needed only when there is (or may be about
  // to be) a desired value; taken before an in-place update changes it.
  const deltaBefore = input.type === 'setDesired' || hasDesired(state)
    ? computeDelta(state.shadow, (name) => getOwn(state.properties, name)?.current.value)
    : undefined
  const s: ThingState = ctx.inPlace === true ? state : cloneState(state)
  const shadowBefore = s.shadow
  const seq = s.seq + 1
  s.seq = seq
  const effects: Effect[] = []
  let rejections: Rejection[] = []
  const written: string[] = []
  let changed: Set<string> | undefined
  let tick = false
  let depth = 0
  /** Rules, alerts or shadow replaced: a store must write them again (markHeadChanged). */
  let headChanged = false

  switch (input.type) {
    case 'write': {
      depth = input.depth ?? 0
      const raw: RawWrite = input.property === undefined ? { payload: input.payload } : { payload: input.payload, property: input.property }
      const w = applyWrite(s, def, raw, now, limits.values, true)
      rejections = w.rejections
      let counted: Array<{ property: string } & Sample> | undefined
      for (const c of w.changes) {
        written.push(c.property)
        if (!c.counted) continue
        ;(counted ??= []).push({ property: c.property, value: c.after.value, ts: c.after.ts, quality: c.after.quality })
        ;(changed ??= new Set()).add(c.property)
      }
      if (counted !== undefined) {
        effects.push({ type: 'stateChanged', thingId: def.id, seq, changes: counted })
        for (const c of counted) {
          if (getOwn(def.properties, c.property)?.history === true) {
            effects.push({ type: 'historyAppend', thingId: def.id, property: c.property, value: c.value, ts: c.ts, quality: c.quality })
          }
        }
      }
      break
    }
    case 'tick':
      tick = true
      break
    case 'setDesired': {
      const patch: Record<string, JsonValue | null> = {}
      for (const [name, value] of Object.entries(input.patch)) {
        const pdef = getOwn(def.properties, name)
        if (pdef === undefined) {
          rejections.push({ code: 'ENGINE_UNKNOWN_PROPERTY', property: name.slice(0, 64), message: `unknown property "${name.slice(0, 64)}"` })
          continue
        }
        if (value === null) {
          patch[name] = null
          continue
        }
        const check = checkValue(pdef, value, limits.values)
        if (!check.ok) rejections.push({ code: check.code, property: name, message: check.message })
        else patch[name] = check.value
      }
      // A desired patch is all-or-nothing: applying half of what an
      // application asked for would leave the device in a state nobody chose.
      if (rejections.length > 0) break
      const r = setDesired(s.shadow, patch, now, input.expectedVersion)
      if (!r.ok) rejections.push({ code: r.code, message: r.message })
      else s.shadow = r.shadow
      break
    }
    case 'ackAlert': {
      const r = acknowledgeAlert(getOwn(s.alerts, input.alert), input.alert, input.by, now)
      if (!r.ok) rejections.push({ code: r.code, message: r.message })
      else if (r.transition !== null) {
        s.alerts[r.record.name] = r.record
        headChanged = true
        effects.push({ type: 'alert', thingId: def.id, transition: r.transition, alert: r.record })
      }
      break
    }
    case 'clearAlert': {
      const current = getOwn(s.alerts, input.alert)
      if (current === undefined) {
        rejections.push({ code: 'ENGINE_UNKNOWN_ALERT', message: `no alert "${input.alert.slice(0, 128)}"` })
        break
      }
      const r = clearAlert(current, now)
      if (r.transition !== null && r.record !== undefined) {
        s.alerts[r.record.name] = r.record
        headChanged = true
        effects.push({ type: 'alert', thingId: def.id, transition: r.transition, alert: r.record })
      }
      break
    }
  }

  if (changed !== undefined || tick) {
    const r = runRules(s, def, { now, changed: changed ?? NOTHING_CHANGED, tick, depth }, { expression: limits.expression, maxCascadeDepth: limits.maxCascadeDepth }, true)
    for (const e of r.effects) effects.push(e)
    if (r.memoryChanged) headChanged = true
  }
  if (headChanged || shadowBefore !== s.shadow) markHeadChanged(s)

  // The delta is recomputed after every input: a desired write changes it,
  // and so does a device report that reaches (or leaves) the desired value.
  // With the shadow untouched and no desired value there is none to tell.
  if (deltaBefore !== undefined && (shadowBefore !== s.shadow || hasDesired(s))) {
    const after = computeDelta(s.shadow, (name) => getOwn(s.properties, name)?.current.value)
    if (deltaBefore.version !== after.version || !jsonEqual(deltaBefore.state, after.state)) {
      effects.push({ type: 'delta', thingId: def.id, version: after.version, state: after.state })
    }
  }
  return { state: s, effects, rejections, written }
}

function hasDesired (s: ThingState): boolean {
  return Object.keys(s.shadow.desired).length > 0
}
