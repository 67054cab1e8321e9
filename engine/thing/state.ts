// Per-thing state. Everything here is plain JSON so the runtime can store it
// and ship it between nodes as is; `v` versions the format for rolling upgrades.

import type { AlertRecord } from '../alerts/index.ts'
import type { ResolvedThing } from '../definitions/index.ts'
import { getOwn, type JsonValue } from '../json.ts'
import type { Quality } from '../model/index.ts'
import { emptyShadow, type ShadowState } from '../shadow/index.ts'

export const THING_STATE_FORMAT = 1

export interface Sample {
  value: JsonValue
  /** Source timestamp, epoch ms; 0 for values that came from a default. */
  ts: number
  quality: Quality
}

export interface PropertyState {
  current: Sample
  /** Last sample that counted as a change: what on-change and deadband compare against. */
  counted?: Sample
  /** The counted sample before `counted`: what `prev.x` reads. */
  prev?: Sample
  /** Engine time (input `now`) of the last counted change: `age.x` is now - changedAt. */
  changedAt?: number
}

export interface RuleMemory {
  /** Condition result at the last successful evaluation (edge detection). */
  active: boolean
  /** Written by releases before 2026-12-03 on every evaluation; no longer kept (see runRules). */
  lastEvalAt?: number
  /** Last scheduled (tick) evaluation. */
  lastScheduledAt?: number
  lastFiredAt?: number
}

export interface ThingState {
  v: typeof THING_STATE_FORMAT
  thingId: string
  /** Inputs processed so far; the runtime can match it with its log position. */
  seq: number
  properties: Record<string, PropertyState>
  rules: Record<string, RuleMemory>
  alerts: Record<string, AlertRecord>
  shadow: ShadowState
}

/**
 * States whose rules, alerts and shadow a store holds as they are now, so it
 * may skip rewriting them (RedisStore, format 2). processInput takes a state
 * out when it changes one of them; a state made, copied or reconciled anew is
 * not in. Kept beside the states rather than in them: a state's JSON is
 * unchanged.
 */
const savedHeads = new WeakSet<ThingState>()

export function markHeadSaved (s: ThingState): void { savedHeads.add(s) }
export function isHeadSaved (s: ThingState): boolean { return savedHeads.has(s) }
export function markHeadChanged (s: ThingState): void { savedHeads.delete(s) }

function defaultSample (def: ResolvedThing['properties'][string]): Sample | undefined {
  if (def.default === undefined) return undefined
  // Defaults are configuration, not measurements: "uncertain" until a device reports.
  return { value: def.default, ts: 0, quality: 'uncertain' }
}

export function initialState (def: ResolvedThing): ThingState {
  const properties: Record<string, PropertyState> = {}
  for (const [name, p] of Object.entries(def.properties)) {
    const s = defaultSample(p)
    if (s !== undefined) properties[name] = { current: s }
  }
  return { v: THING_STATE_FORMAT, thingId: def.id, seq: 0, properties, rules: {}, alerts: {}, shadow: emptyShadow() }
}

/**
 * A copy that an in-place update cannot reach: the state and its property,
 * rule and alert maps are new; the entries (property states, rule memories,
 * alert records, the shadow) are shared, because updates replace entries and
 * never change one.
 */
export function cloneState (state: ThingState): ThingState {
  return { ...state, properties: { ...state.properties }, rules: { ...state.rules }, alerts: { ...state.alerts } }
}

export interface ReconcileOptions {
  /**
   * True when loading state after a restart: property values not marked
   * `persist` are dropped (back to their default) and rule edge memory is
   * kept, so a condition already true does not fire again.
   */
  restart?: boolean
}

/**
 * Brings stored state in line with a (possibly newer) definition: drops
 * properties, rule memory and desired entries that no longer exist, adds
 * defaults for new properties, and on restart drops non-persistent values.
 */
export function reconcileState (state: ThingState, def: ResolvedThing, opts: ReconcileOptions = {}): ThingState {
  const properties: Record<string, PropertyState> = {}
  for (const [name, p] of Object.entries(def.properties)) {
    const old = getOwn(state.properties, name)
    const keep = old !== undefined && (opts.restart !== true || p.persist === true)
    if (keep) properties[name] = old
    else {
      const s = defaultSample(p)
      if (s !== undefined) properties[name] = { current: s }
    }
  }
  const rules: Record<string, RuleMemory> = {}
  for (const r of def.rules) {
    const m = getOwn(state.rules, r.id)
    if (m !== undefined) rules[r.id] = m
  }
  const desired: ShadowState['desired'] = {}
  for (const [name, entry] of Object.entries(state.shadow.desired)) {
    if (def.propertyNames.has(name)) desired[name] = entry
  }
  return { ...state, thingId: def.id, properties, rules, shadow: { version: state.shadow.version, desired } }
}
