// Device-shadow pattern. Applications write desired values; the engine keeps
// telling the device the delta (desired entries the reported state does not
// match) until the device reports them. Every accepted desired write bumps the
// version, and a writer that passes the version it read is refused if someone
// wrote in between (lost-update detection). Reported values are the thing's
// property values themselves, so they are not duplicated here.

import type { EngineErrorCode } from '../errors.ts'
import { FORBIDDEN_KEYS, getOwn, jsonEqual, type JsonValue } from '../json.ts'

export interface DesiredEntry {
  value: JsonValue
  /** Shadow version at which this entry was last written. */
  version: number
  at: number
}

export interface ShadowState {
  version: number
  desired: Record<string, DesiredEntry>
}

export interface Delta {
  version: number
  state: Record<string, JsonValue>
}

export function emptyShadow (): ShadowState {
  return { version: 0, desired: {} }
}

export type ShadowResult =
  | { ok: true, shadow: ShadowState }
  | { ok: false, code: EngineErrorCode, message: string }

/** Version check used by every versioned write: undefined means "unconditional". */
export function checkVersion (current: number, expected: number | undefined): { ok: true } | { ok: false, code: 'ENGINE_VERSION_CONFLICT', message: string } {
  if (expected === undefined || expected === current) return { ok: true }
  return { ok: false, code: 'ENGINE_VERSION_CONFLICT', message: `stale write: expected version ${expected}, current version is ${current}` }
}

/**
 * Applies a desired patch; `null` removes a key. Values must already be
 * validated against the property definitions (see the thing processor).
 */
export function setDesired (shadow: ShadowState, patch: Readonly<Record<string, JsonValue | null>>, now: number, expectedVersion?: number): ShadowResult {
  const check = checkVersion(shadow.version, expectedVersion)
  if (!check.ok) return check
  for (const key of Object.keys(patch)) {
    if (FORBIDDEN_KEYS.has(key)) return { ok: false, code: 'ENGINE_INVALID_ARGUMENT', message: `forbidden key "${key}"` }
  }
  const version = shadow.version + 1
  const desired: Record<string, DesiredEntry> = { ...shadow.desired }
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete desired[key]
    else desired[key] = { value, version, at: now }
  }
  return { ok: true, shadow: { version, desired } }
}

/** Desired entries whose reported value differs; `reported` returns undefined for "no value". */
export function computeDelta (shadow: ShadowState, reported: (name: string) => JsonValue | undefined): Delta {
  const state: Record<string, JsonValue> = {}
  for (const key of Object.keys(shadow.desired).sort()) {
    const entry = getOwn(shadow.desired, key) as DesiredEntry
    const r = reported(key)
    if (r === undefined || !jsonEqual(r, entry.value)) state[key] = entry.value
  }
  return { version: shadow.version, state }
}

export function deltaIsEmpty (d: Delta): boolean {
  return Object.keys(d.state).length === 0
}
