// JSON value helpers shared by the engine. Values that reach the engine come
// from untrusted devices, so every lookup by a name that came from outside goes
// through `getOwn`: a plain `obj[name]` would find `constructor` or
// `__proto__` on Object.prototype.

export type JsonPrimitive = string | number | boolean | null
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue }
export type JsonObject = { [key: string]: JsonValue }

/** Names that must never be used as keys we create or look up. */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype'])

export function isPlainObject (v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const proto: unknown = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

export function getOwn<T> (obj: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(obj, key) ? obj[key] : undefined
}

export function hasOwn (obj: object, key: string): boolean {
  return Object.hasOwn(obj, key)
}

/**
 * Structural equality of JSON values. `budget` is charged one step per node so
 * callers evaluating untrusted input can bound the work.
 */
export function jsonEqual (a: JsonValue, b: JsonValue, charge: () => void = noop): boolean {
  charge()
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i] as JsonValue, b[i] as JsonValue, charge)) return false
    return true
  }
  if (Array.isArray(b)) return false
  const ka = Object.keys(a)
  if (ka.length !== Object.keys(b).length) return false
  for (const k of ka) {
    if (!Object.hasOwn(b, k)) return false
    if (!jsonEqual(a[k] as JsonValue, b[k] as JsonValue, charge)) return false
  }
  return true
}

function noop (): void {}

export interface JsonShapeLimits {
  maxDepth: number
  maxBytes: number
}

/**
 * Checks that `v` is plain JSON (no functions, NaN, class instances, cycles)
 * within depth and serialised-size limits. Returns a reason or null.
 */
export function checkJson (v: unknown, limits: JsonShapeLimits): string | null {
  const reason = walk(v, 0, limits.maxDepth)
  if (reason !== null) return reason
  const size = JSON.stringify(v).length
  if (size > limits.maxBytes) return `serialised size ${size} exceeds ${limits.maxBytes}`
  return null
}

function walk (v: unknown, depth: number, maxDepth: number): string | null {
  if (depth > maxDepth) return `nesting deeper than ${maxDepth}`
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return null
  if (typeof v === 'number') return Number.isFinite(v) ? null : 'non-finite number'
  if (Array.isArray(v)) {
    for (const x of v) {
      const r = walk(x, depth + 1, maxDepth)
      if (r !== null) return r
    }
    return null
  }
  if (isPlainObject(v)) {
    for (const k of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(k)) return `forbidden key "${k}"`
      const r = walk(v[k], depth + 1, maxDepth)
      if (r !== null) return r
    }
    return null
  }
  return `not a JSON value (${typeof v})`
}

const FORBIDDEN_SPELLED = /__proto__|constructor|prototype/

/** JSON.parse that never throws and refuses prototype-polluting keys. */
export function parseJson (text: string): { ok: true, value: JsonValue } | { ok: false, message: string } {
  try {
    // Without a backslash a key is spelled in the text as it is decoded, so
    // text that never spells a forbidden name cannot hold one: the plain
    // parse (several times faster than one with a reviver) is enough. Most
    // device writes are a bare number.
    if (!text.includes('\\') && !FORBIDDEN_SPELLED.test(text)) return { ok: true, value: JSON.parse(text) as JsonValue }
    // The reviver drops nothing silently: a forbidden key makes the whole
    // payload invalid, because quietly removing it would change its meaning.
    let forbidden: string | null = null
    const value = JSON.parse(text, function (this: unknown, key: string, val: unknown) {
      if (FORBIDDEN_KEYS.has(key)) forbidden = key
      return val
    }) as JsonValue
    if (forbidden !== null) return { ok: false, message: `forbidden key "${forbidden as string}"` }
    return { ok: true, value }
  } catch (e) {
    return { ok: false, message: (e as Error).message }
  }
}
