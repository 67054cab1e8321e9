// Property writes. Devices publish either one property (`value` or an
// envelope `{"value", "ts", "quality"}`) or a map of property -> value/envelope.
// Each property is accepted or rejected on its own: one bad reading must not
// discard the good ones sent with it.

import type { EngineErrorCode } from '../errors.ts'
import { getOwn, isPlainObject, parseJson, type JsonValue } from '../json.ts'
import { checkValue, QUALITIES, type PropertyDef, type Quality, type ValueLimits } from '../model/index.ts'
import { countsAsChange } from './change-policy.ts'
import type { PropertyState, Sample, ThingState } from './state.ts'

export interface PropertyWrite {
  property: string
  /** Absent for a quality-only update (`{"quality": "bad"}`). */
  value?: JsonValue
  ts?: number
  quality?: Quality
}

export interface WriteRejection {
  code: EngineErrorCode
  /** Absent when the whole payload was rejected. */
  property?: string
  message: string
}

export interface PropertyChange {
  property: string
  before?: Sample
  after: Sample
  /** Whether the change counted under the property's change policy. */
  counted: boolean
}

/** Raw write as it arrives: payload text (or parsed JSON), optionally addressed to one property. */
export interface RawWrite {
  payload: string | JsonValue
  property?: string
}

export const ENVELOPE_KEYS: ReadonlySet<string> = new Set(['value', 'ts', 'quality'])

/**
 * An object is an envelope when all its keys are value/ts/quality and it has
 * value or quality. To store such an object in a json property, wrap it:
 * `{"value": {"value": 1}}`.
 */
export function isEnvelope (v: JsonValue): v is { value?: JsonValue, ts?: JsonValue, quality?: JsonValue } {
  if (!isPlainObject(v)) return false
  const keys = Object.keys(v)
  return keys.length > 0 && keys.every((k) => ENVELOPE_KEYS.has(k)) && (Object.hasOwn(v, 'value') || Object.hasOwn(v, 'quality'))
}

export function parseWrite (raw: RawWrite): { writes: PropertyWrite[], rejections: WriteRejection[] } {
  let payload: JsonValue
  if (typeof raw.payload === 'string') {
    const p = parseJson(raw.payload)
    if (!p.ok) {
      const r: WriteRejection = { code: 'ENGINE_BAD_JSON', message: `payload is not valid JSON: ${p.message}` }
      if (raw.property !== undefined) r.property = raw.property
      return { writes: [], rejections: [r] }
    }
    payload = p.value
  } else {
    payload = raw.payload
  }

  const writes: PropertyWrite[] = []
  const rejections: WriteRejection[] = []
  if (raw.property !== undefined) {
    parseOne(raw.property, payload, writes, rejections)
  } else if (isPlainObject(payload)) {
    for (const [k, v] of Object.entries(payload)) parseOne(k, v as JsonValue, writes, rejections)
  } else {
    rejections.push({ code: 'ENGINE_BAD_WRITE', message: 'a thing write must be a JSON object of property -> value' })
  }
  return { writes, rejections }
}

// A module function, not a closure in parseWrite: the node runs through tsx,
// whose keepNames gives every named closure an Object.defineProperty call
// when it is created (about 0.35 us and a few hundred bytes), once per write.
function parseOne (property: string, v: JsonValue, writes: PropertyWrite[], rejections: WriteRejection[]): void {
  if (!isEnvelope(v)) {
    writes.push({ property, value: v })
    return
  }
  const w: PropertyWrite = { property }
  if (Object.hasOwn(v, 'value')) w.value = v.value as JsonValue
  if (Object.hasOwn(v, 'ts')) {
    const ts = parseTimestamp(v.ts as JsonValue)
    if (ts === undefined) {
      rejections.push({ code: 'ENGINE_BAD_WRITE', property, message: 'ts must be epoch milliseconds or an ISO 8601 datetime with zone' })
      return
    }
    w.ts = ts
  }
  if (Object.hasOwn(v, 'quality')) {
    const q = v.quality
    if (typeof q !== 'string' || !(QUALITIES as readonly string[]).includes(q)) {
      rejections.push({ code: 'ENGINE_BAD_WRITE', property, message: `quality must be one of ${QUALITIES.join(', ')}` })
      return
    }
    w.quality = q as Quality
  }
  writes.push(w)
}

const ISO_TS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/

function parseTimestamp (v: JsonValue): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined
  if (typeof v === 'string' && ISO_TS.test(v)) {
    const ms = Date.parse(v)
    return Number.isFinite(ms) && ms >= 0 ? ms : undefined
  }
  return undefined
}

export interface WriteDefinition {
  properties: Readonly<Record<string, PropertyDef>>
}

export interface WriteResult {
  state: ThingState
  changes: PropertyChange[]
  rejections: WriteRejection[]
}

/**
 * Validates and applies writes to a thing's state. `now` is the engine's
 * processing time (used for missing timestamps and for age); it is an input
 * so that replaying the same log gives the same state.
 */
export function applyWrite (
  state: ThingState,
  def: WriteDefinition,
  write: RawWrite | readonly PropertyWrite[],
  now: number,
  limits?: ValueLimits,
  /** Replace entries of `state.properties` instead of copying it (the caller owns the state). */
  inPlace = false
): WriteResult {
  const parsed = isRawWrite(write) ? parseWrite(write) : { writes: [...write], rejections: [] }
  const rejections = parsed.rejections
  const changes: PropertyChange[] = []
  let properties: Record<string, PropertyState> | undefined = inPlace ? state.properties : undefined

  for (const w of parsed.writes) {
    const pdef = getOwn(def.properties, w.property)
    if (pdef === undefined) {
      rejections.push({ code: 'ENGINE_UNKNOWN_PROPERTY', property: w.property.slice(0, 64), message: `unknown property "${w.property.slice(0, 64)}"` })
      continue
    }
    const before = getOwn(properties ?? state.properties, w.property)
    let value: JsonValue
    if (w.value === undefined) {
      if (w.quality === undefined || before === undefined) {
        rejections.push({ code: 'ENGINE_BAD_WRITE', property: w.property, message: before === undefined ? 'quality-only update for a property that has no value yet' : 'write has neither value nor quality' })
        continue
      }
      value = before.current.value
    } else {
      const check = checkValue(pdef, w.value, limits)
      if (!check.ok) {
        rejections.push({ code: check.code, property: w.property, message: check.message })
        continue
      }
      value = check.value
    }
    const sample: Sample = { value, ts: w.ts ?? now, quality: w.quality ?? 'good' }
    if (before !== undefined && sample.ts < before.current.ts) {
      rejections.push({ code: 'ENGINE_STALE_VALUE', property: w.property, message: `timestamp ${sample.ts} is older than the current value's ${before.current.ts}` })
      continue
    }
    const reference = before?.counted ?? before?.current
    const counted = countsAsChange(pdef.change, reference, sample)
    // Built without undefined members (rather than deleting them after):
    // the state must round-trip through JSON unchanged, and `delete` turns
    // an object into a slow, larger dictionary-mode object.
    let next: PropertyState
    if (counted) next = reference === undefined ? { current: sample, counted: sample, changedAt: now } : { current: sample, counted: sample, prev: reference, changedAt: now }
    else next = { ...(before ?? {}), current: sample }
    properties ??= { ...state.properties }
    properties[w.property] = next
    changes.push(before === undefined ? { property: w.property, after: sample, counted } : { property: w.property, before: before.current, after: sample, counted })
  }
  return { state: properties === undefined || inPlace ? state : { ...state, properties }, changes, rejections }
}

function isRawWrite (w: RawWrite | readonly PropertyWrite[]): w is RawWrite {
  return !Array.isArray(w)
}
