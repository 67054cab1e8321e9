// JSON of the thing-state shapes written on every update: a property's state
// (committed), and the retained `state` payload. Built as strings from the
// known shapes instead of JSON.stringify on objects assembled for it: the
// payload used to need a fresh map of current samples per update, and both
// are most of the engine's per-update serialisation. The output is byte for
// byte what JSON.stringify gives for the same object (tested), so readers
// see no difference.

import type { JsonValue } from '../json.ts'
import type { PropertyState, Sample, ThingState } from './state.ts'

/** `"name":` per property or desired-value name (names come from definitions: a bounded set). */
const keyCache = new Map<string, string>()
const KEY_CACHE_MAX = 10_000

function key (name: string): string {
  let k = keyCache.get(name)
  if (k === undefined) {
    k = JSON.stringify(name) + ':'
    if (keyCache.size < KEY_CACHE_MAX) keyCache.set(name, k)
  }
  return k
}

/**
 * `quality` is one of good/uncertain/bad in states this release writes, but a
 * state loaded from Redis is taken as stored: quote it properly.
 */
function quality (q: string): string {
  return q === 'good' ? '"good"' : q === 'uncertain' ? '"uncertain"' : q === 'bad' ? '"bad"' : JSON.stringify(q)
}

/** JSON of one value; numbers (most device values) without the generic path. */
function value (v: JsonValue): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : JSON.stringify(v)
}

/** JSON.stringify(sample) for a sample with value, ts and quality (in that order, as every writer builds them). */
export function sampleJson (s: Sample): string {
  // A sample of another shape (from a stored state) keeps the generic path.
  if (s.value === undefined || typeof s.ts !== 'number' || !Number.isFinite(s.ts) || typeof s.quality !== 'string') return JSON.stringify(s)
  return '{"value":' + value(s.value) + ',"ts":' + s.ts + ',"quality":' + quality(s.quality) + '}'
}

/** JSON.stringify(p) for a property state (current, counted?, prev?, changedAt?). */
export function propertyStateJson (p: PropertyState): string {
  const current = sampleJson(p.current)
  let s = '{"current":' + current
  if (p.counted !== undefined) s += ',"counted":' + (p.counted === p.current ? current : sampleJson(p.counted))
  if (p.prev !== undefined) s += ',"prev":' + sampleJson(p.prev)
  if (p.changedAt !== undefined) s += ',"changedAt":' + value(p.changedAt)
  return s + '}'
}

/**
 * The retained `state` payload: JSON.stringify({id, thingId, seq, properties:
 * {name: current sample}, desired: {name: value}, shadowVersion}).
 */
export function statePayloadJson (id: string, s: ThingState): string {
  let props = ''
  for (const name in s.properties) {
    props += (props === '' ? key(name) : ',' + key(name)) + sampleJson((s.properties[name] as PropertyState).current)
  }
  let desired = ''
  for (const name in s.shadow.desired) {
    const v = (s.shadow.desired[name] as ThingState['shadow']['desired'][string]).value
    if (v !== undefined) desired += (desired === '' ? key(name) : ',' + key(name)) + JSON.stringify(v)
  }
  return '{"id":' + JSON.stringify(id) + ',"thingId":' + JSON.stringify(s.thingId) + ',"seq":' + value(s.seq) +
    ',"properties":{' + props + '},"desired":{' + desired + '},"shadowVersion":' + value(s.shadow.version) + '}'
}
