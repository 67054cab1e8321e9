// Value checking against a property definition, and the semantic checks of a
// definition itself (the parts zod's shape check cannot express).

import type { EngineErrorCode, Problem } from '../errors.ts'
import { checkJson, isPlainObject, type JsonValue } from '../json.ts'
import type { PropertyDef } from './schema.ts'

export interface ValueLimits {
  /** Cap for string values when the definition sets no maxLength. */
  maxStringLength: number
  maxJsonBytes: number
  maxJsonDepth: number
}

export const DEFAULT_VALUE_LIMITS: Readonly<ValueLimits> = Object.freeze({
  maxStringLength: 65_536,
  maxJsonBytes: 65_536,
  maxJsonDepth: 32,
})

export type ValueCheck =
  | { ok: true, value: JsonValue }
  | { ok: false, code: EngineErrorCode, message: string }

// Strict ISO 8601 with a zone: a datetime without one means different
// instants on different nodes.
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/

function fail (code: EngineErrorCode, message: string): ValueCheck {
  return { ok: false, code, message }
}

function describe (v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'an array'
  if (typeof v === 'object') return 'an object'
  return `${typeof v} ${JSON.stringify(v)}`.slice(0, 80)
}

/**
 * Checks `raw` against `def` and returns the value to store. Datetimes are
 * normalised to ISO strings in UTC and locations to {lat, lon[, alt]}, so
 * equality (on-change) does not depend on how a device spelled the value.
 */
export function checkValue (def: PropertyDef, raw: JsonValue, limits: ValueLimits = DEFAULT_VALUE_LIMITS): ValueCheck {
  if (raw === null) {
    return def.nullable === true || def.type === 'json' ? { ok: true, value: null } : fail('ENGINE_TYPE_MISMATCH', `expected ${def.type}, got null (property is not nullable)`)
  }
  switch (def.type) {
    case 'number':
    case 'integer': {
      if (typeof raw !== 'number' || !Number.isFinite(raw)) return fail('ENGINE_TYPE_MISMATCH', `expected ${def.type}, got ${describe(raw)}`)
      if (def.type === 'integer' && !Number.isSafeInteger(raw)) return fail('ENGINE_TYPE_MISMATCH', `expected integer, got ${raw}`)
      if (def.min !== undefined && raw < def.min) return fail('ENGINE_OUT_OF_RANGE', `${raw} is below the minimum ${def.min}`)
      if (def.max !== undefined && raw > def.max) return fail('ENGINE_OUT_OF_RANGE', `${raw} is above the maximum ${def.max}`)
      return checkEnum(def, raw)
    }
    case 'boolean':
      return typeof raw === 'boolean' ? { ok: true, value: raw } : fail('ENGINE_TYPE_MISMATCH', `expected boolean, got ${describe(raw)}`)
    case 'string': {
      if (typeof raw !== 'string') return fail('ENGINE_TYPE_MISMATCH', `expected string, got ${describe(raw)}`)
      const max = def.maxLength ?? limits.maxStringLength
      if (raw.length > max) return fail('ENGINE_VALUE_TOO_LARGE', `string of ${raw.length} characters exceeds ${max}`)
      return checkEnum(def, raw)
    }
    case 'json': {
      const reason = checkJson(raw, { maxDepth: limits.maxJsonDepth, maxBytes: limits.maxJsonBytes })
      if (reason === null) return { ok: true, value: raw }
      return fail(reason.startsWith('serialised size') || reason.startsWith('nesting') ? 'ENGINE_VALUE_TOO_LARGE' : 'ENGINE_TYPE_MISMATCH', reason)
    }
    case 'datetime': {
      let ms: number
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) ms = raw
      else if (typeof raw === 'string' && ISO_RE.test(raw)) ms = Date.parse(raw)
      else return fail('ENGINE_TYPE_MISMATCH', `expected an ISO 8601 datetime with zone or epoch milliseconds, got ${describe(raw)}`)
      if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return fail('ENGINE_OUT_OF_RANGE', `datetime ${describe(raw)} is not a valid date`)
      return { ok: true, value: new Date(ms).toISOString() }
    }
    case 'location':
      return checkLocation(raw)
  }
}

function checkEnum (def: PropertyDef, v: string | number): ValueCheck {
  if (def.enum !== undefined && !def.enum.includes(v)) {
    return fail('ENGINE_NOT_IN_ENUM', `${JSON.stringify(v)} is not one of ${JSON.stringify(def.enum)}`)
  }
  return { ok: true, value: v }
}

function checkLocation (raw: JsonValue): ValueCheck {
  if (!isPlainObject(raw)) return fail('ENGINE_TYPE_MISMATCH', `expected location {lat, lon[, alt]}, got ${describe(raw)}`)
  for (const k of Object.keys(raw)) {
    if (k !== 'lat' && k !== 'lon' && k !== 'alt') return fail('ENGINE_TYPE_MISMATCH', `location has unknown field "${k.slice(0, 40)}"`)
  }
  const { lat, lon, alt } = raw
  if (typeof lat !== 'number' || typeof lon !== 'number' || !Number.isFinite(lat) || !Number.isFinite(lon)) {
    return fail('ENGINE_TYPE_MISMATCH', 'location needs numeric lat and lon')
  }
  if (lat < -90 || lat > 90) return fail('ENGINE_OUT_OF_RANGE', `latitude ${lat} outside -90..90`)
  if (lon < -180 || lon > 180) return fail('ENGINE_OUT_OF_RANGE', `longitude ${lon} outside -180..180`)
  if (alt === undefined) return { ok: true, value: { lat, lon } }
  if (typeof alt !== 'number' || !Number.isFinite(alt)) return fail('ENGINE_TYPE_MISMATCH', 'location alt must be a number')
  return { ok: true, value: { lat, lon, alt } }
}

/** Semantic problems of one definition; paths are relative to it (`min`, `default`). */
export function checkPropertyDef (def: PropertyDef, limits: ValueLimits = DEFAULT_VALUE_LIMITS): Problem[] {
  const problems: Problem[] = []
  const bad = (path: string, message: string, code: EngineErrorCode = 'ENGINE_INVALID_DEFINITION'): void => {
    problems.push({ code, path, message })
  }
  const numeric = def.type === 'number' || def.type === 'integer'
  if (!numeric) {
    if (def.min !== undefined) bad('min', `min applies only to number and integer, not ${def.type}`)
    if (def.max !== undefined) bad('max', `max applies only to number and integer, not ${def.type}`)
    if (typeof def.change === 'object') bad('change', `deadband applies only to number and integer, not ${def.type}`)
  }
  if (def.min !== undefined && def.max !== undefined && def.min > def.max) bad('max', `max ${def.max} is below min ${def.min}`)
  if (def.maxLength !== undefined && def.type !== 'string') bad('maxLength', `maxLength applies only to string, not ${def.type}`)
  if (def.enum !== undefined) {
    if (!numeric && def.type !== 'string') {
      bad('enum', `enum applies only to number, integer and string, not ${def.type}`)
    } else {
      def.enum.forEach((v, i) => {
        // Check each entry against the definition minus its enum: an entry
        // must itself be a value the property could hold.
        const r = checkValue({ ...def, enum: undefined }, v, limits)
        if (!r.ok) bad(`enum[${i}]`, r.message, r.code)
      })
    }
  }
  if (def.default !== undefined) {
    const r = checkValue(def, def.default, limits)
    if (!r.ok) bad('default', r.message, r.code)
  }
  return problems
}
