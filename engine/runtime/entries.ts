// Partition log entries: the one durable record of every input a thing gets.
// An entry carries the processing time `n` chosen when it was appended, so a
// replay after failover computes exactly what the first run computed.

import type { JsonValue, ThingInput } from '../index.ts'
import { ENTRY_KINDS as KINDS, entryFields, PACKED_ENTRY_FIELD, unpackEntry } from './formats.ts'

export type EntryKind =
  /** Device report; `v` is the raw payload text. */
  | 'w'
  /** Rule write (setProperty fed back); `v` is the JSON value, `d` the cascade depth. */
  | 'r'
  /** Desired value(s); `v` is the raw payload text. */
  | 'd'
  /** Scheduled evaluation. */
  | 'tick'
  /** Alert acknowledge (`p` = alert, `v` = by). */
  | 'ack'

export interface EntryFields {
  t: string
  k: EntryKind
  /** Property (or alert) name; '' when the entry addresses the whole thing. */
  p: string
  v: string
  /** Processing time, epoch ms. */
  n: number
  /** Client id of the writer ('' for the engine itself), for error replies. */
  o: string
  d: number
}

export interface LogEntry extends EntryFields { id: string }

export const ENTRY_FIELD_ORDER = ['t', 'k', 'p', 'v', 'n', 'o', 'd'] as const

/** Flat field/value list as XADD takes it, in format 1 (formats.ts): always all seven fields, in order. */
export function encodeEntry (e: EntryFields): string[] {
  return entryFields(e, 1)
}

/** Decodes XREAD fields; undefined for an entry from an incompatible release (skipped, logged by the caller). */
export function decodeEntry (id: string, flat: readonly string[]): LogEntry | undefined {
  if (flat.length === 2 && flat[0] === PACKED_ENTRY_FIELD) return unpackEntry(id, flat[1] as string)
  // Every format-1 entry this release writes has the seven fields in ENTRY_FIELD_ORDER:
  // read them by position (one object per entry instead of two).
  if (flat.length === 14 && flat[0] === 't' && flat[2] === 'k' && flat[4] === 'p' && flat[6] === 'v' && flat[8] === 'n' && flat[10] === 'o' && flat[12] === 'd') {
    const k = flat[3] as string
    const n = Number(flat[9])
    if (!KINDS.has(k) || !Number.isFinite(n)) return undefined
    return { id, t: flat[1] as string, k: k as EntryKind, p: flat[5] as string, v: flat[7] as string, n, o: flat[11] as string, d: Number(flat[13]) || 0 }
  }
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string
  const k = f.k
  if (f.t === undefined || k === undefined || !KINDS.has(k)) return undefined
  const n = Number(f.n)
  if (!Number.isFinite(n)) return undefined
  return { id, t: f.t, k: k as EntryKind, p: f.p ?? '', v: f.v ?? '', n, o: f.o ?? '', d: Number(f.d ?? 0) || 0 }
}

/** The processor input an entry stands for, or a rejection text when the payload cannot be one. */
export function toInput (e: EntryFields): { input: ThingInput } | { error: { code: 'ENGINE_BAD_JSON' | 'ENGINE_BAD_WRITE', message: string } } {
  switch (e.k) {
    case 'w':
      return { input: e.p === '' ? { type: 'write', source: 'device', payload: e.v } : { type: 'write', source: 'device', property: e.p, payload: e.v } }
    case 'r': {
      let value: JsonValue
      try { value = JSON.parse(e.v) as JsonValue } catch { return { error: { code: 'ENGINE_BAD_JSON', message: 'rule value is not JSON' } } }
      // Wrapped in an envelope so a json-typed value that looks like one is stored as is.
      return { input: { type: 'write', source: 'rule', depth: e.d, property: e.p, payload: { value } } }
    }
    case 'd': {
      let value: JsonValue
      try { value = JSON.parse(e.v) as JsonValue } catch (err) { return { error: { code: 'ENGINE_BAD_JSON', message: `payload is not valid JSON: ${(err as Error).message}` } } }
      if (e.p !== '') return { input: { type: 'setDesired', patch: { [e.p]: value } } }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        return { error: { code: 'ENGINE_BAD_WRITE', message: 'a desired write to things/{id}/desired must be a JSON object of property -> value' } }
      }
      return { input: { type: 'setDesired', patch: value as Record<string, JsonValue> } }
    }
    case 'tick':
      return { input: { type: 'tick' } }
    case 'ack':
      return { input: e.v === '' ? { type: 'ackAlert', alert: e.p } : { type: 'ackAlert', alert: e.p, by: e.v } }
  }
}
