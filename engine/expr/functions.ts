// The whitelist of callable functions. Nothing outside this table can be
// called: the parser rejects any other name at compile time, so there is no
// path from an expression to a host object.

import { evaluationError, type EngineError } from '../errors.ts'
import { jsonEqual, type JsonValue } from '../json.ts'

export interface CallContext {
  /** Charges evaluation steps; throws ENGINE_EVAL_BUDGET when exhausted. */
  charge: (steps: number) => void
  /** Throws ENGINE_EVAL_LIMIT if the string is longer than allowed; returns it otherwise. */
  str: (s: string) => string
}

interface FunctionSpec {
  minArgs: number
  maxArgs: number
  impl: (args: JsonValue[], ctx: CallContext) => JsonValue
}

function typeError (fn: string, expected: string, got: JsonValue): EngineError {
  return evaluationError('ENGINE_EVAL_TYPE', `${fn}() expects ${expected}, got ${typeName(got)}`)
}

export function typeName (v: JsonValue): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

function num (fn: string, v: JsonValue): number {
  if (typeof v !== 'number') throw typeError(fn, 'a number', v)
  return v
}
function text (fn: string, v: JsonValue): string {
  if (typeof v !== 'string') throw typeError(fn, 'a string', v)
  return v
}
function finite (fn: string, n: number): number {
  if (!Number.isFinite(n)) throw evaluationError('ENGINE_EVAL_TYPE', `${fn}() result is not a finite number`)
  return n
}
// Work proportional to a string's length is charged in chunks, so a long
// string costs more steps than a short one without charging per character.
function chargeLen (ctx: CallContext, n: number): void {
  ctx.charge(1 + Math.floor(n / 256))
}

const numeric1 = (name: string, f: (n: number) => number): FunctionSpec => ({
  minArgs: 1,
  maxArgs: 1,
  impl: ([a]) => finite(name, f(num(name, a as JsonValue))),
})

export const FUNCTIONS: Readonly<Record<string, FunctionSpec>> = Object.freeze({
  abs: numeric1('abs', Math.abs),
  floor: numeric1('floor', Math.floor),
  ceil: numeric1('ceil', Math.ceil),
  sqrt: numeric1('sqrt', Math.sqrt),
  round: {
    minArgs: 1,
    maxArgs: 2,
    impl: ([a, d]) => {
      const n = num('round', a as JsonValue)
      if (d === undefined) return Math.round(n)
      const digits = num('round', d)
      if (!Number.isInteger(digits) || digits < 0 || digits > 15) throw evaluationError('ENGINE_EVAL_TYPE', 'round() digits must be an integer 0..15')
      const f = 10 ** digits
      return finite('round', Math.round(n * f) / f)
    },
  },
  min: { minArgs: 1, maxArgs: 16, impl: (args) => Math.min(...args.map((a) => num('min', a))) },
  max: { minArgs: 1, maxArgs: 16, impl: (args) => Math.max(...args.map((a) => num('max', a))) },
  len: {
    minArgs: 1,
    maxArgs: 1,
    impl: ([a]) => {
      if (typeof a === 'string' || Array.isArray(a)) return a.length
      if (a !== null && typeof a === 'object') return Object.keys(a).length
      throw typeError('len', 'a string, array or object', a as JsonValue)
    },
  },
  contains: {
    minArgs: 2,
    maxArgs: 2,
    impl: ([h, n], ctx) => {
      const needle = n as JsonValue
      if (typeof h === 'string') {
        chargeLen(ctx, h.length)
        return h.includes(text('contains', needle))
      }
      if (Array.isArray(h)) {
        for (const x of h) if (jsonEqual(x, needle, () => ctx.charge(1))) return true
        return false
      }
      throw typeError('contains', 'a string or array', h as JsonValue)
    },
  },
  startsWith: {
    minArgs: 2,
    maxArgs: 2,
    impl: ([s, p]) => text('startsWith', s as JsonValue).startsWith(text('startsWith', p as JsonValue)),
  },
  lower: {
    minArgs: 1,
    maxArgs: 1,
    impl: ([s], ctx) => {
      const t = text('lower', s as JsonValue)
      chargeLen(ctx, t.length)
      return ctx.str(t.toLowerCase())
    },
  },
  upper: {
    minArgs: 1,
    maxArgs: 1,
    impl: ([s], ctx) => {
      const t = text('upper', s as JsonValue)
      chargeLen(ctx, t.length)
      // toUpperCase can grow a string ("ß" -> "SS"), hence the length check.
      return ctx.str(t.toUpperCase())
    },
  },
  number: {
    minArgs: 1,
    maxArgs: 1,
    impl: ([v]) => {
      if (typeof v === 'number' || v === null) return v
      if (typeof v === 'boolean') return v ? 1 : 0
      if (typeof v === 'string') {
        const t = v.trim()
        // Number('') is 0 and Number('0x10') is 16; neither is what a device meant.
        if (!/^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/.test(t)) return null
        const n = Number(t)
        return Number.isFinite(n) ? n : null
      }
      return null
    },
  },
  string: {
    minArgs: 1,
    maxArgs: 1,
    impl: ([v], ctx) => ctx.str(toText(v as JsonValue, ctx)),
  },
  isNull: { minArgs: 1, maxArgs: 1, impl: ([v]) => v === null },
})

/** Text form used by string() and by template interpolation. */
export function toText (v: JsonValue, ctx: CallContext): string {
  if (typeof v === 'string') return v
  if (v === null || typeof v !== 'object') return String(v)
  const s = JSON.stringify(v)
  chargeLen(ctx, s.length)
  return s
}

export function lookupFunction (name: string): FunctionSpec | undefined {
  return Object.hasOwn(FUNCTIONS, name) ? FUNCTIONS[name] : undefined
}
