// Tree-walking evaluator. It only ever touches JSON values handed in through
// the scope; member access is limited to own properties of plain objects and
// arrays, and every node visit is charged against a step budget.

import { evaluationError, type EngineError } from '../errors.ts'
import { FORBIDDEN_KEYS, isPlainObject, jsonEqual, type JsonValue } from '../json.ts'
import type { Node } from './ast.ts'
import { lookupFunction, typeName, type CallContext } from './functions.ts'
import type { ExpressionLimits } from './limits.ts'

/** What an expression can see. Implementations must return JSON values only. */
export interface EvalScope {
  /** Current value, or null when the property has none. */
  value: (name: string) => JsonValue
  /** Value before the last counted change, or null. */
  prev: (name: string) => JsonValue
  /** True when the property counted as changed in the update being processed. */
  changed: (name: string) => boolean
  /** Milliseconds since the last counted change, or null if it never changed. */
  age: (name: string) => number | null
  quality: (name: string) => string | null
  now: number
  thing: { id: string, template: string }
}

export class Evaluation implements CallContext {
  private steps = 0

  constructor (private readonly scope: EvalScope, private readonly limits: ExpressionLimits) {}

  // Methods, not arrow properties: an Evaluation is made per rule condition
  // evaluated, and two closures each time were measurable garbage.
  charge (n: number): void {
    this.steps += n
    if (this.steps > this.limits.maxSteps) {
      throw evaluationError('ENGINE_EVAL_BUDGET', `evaluation exceeded ${this.limits.maxSteps} steps`)
    }
  }

  str (s: string): string {
    if (s.length > this.limits.maxStringLength) {
      throw evaluationError('ENGINE_EVAL_LIMIT', `string longer than ${this.limits.maxStringLength} characters`)
    }
    return s
  }

  get stepsUsed (): number {
    return this.steps
  }

  eval (node: Node): JsonValue {
    this.charge(1)
    const s = this.scope
    switch (node.kind) {
      case 'literal': return node.value
      case 'property': return s.value(node.name)
      case 'now': return s.now
      case 'thing': return s.thing[node.field]
      case 'view':
        switch (node.ns) {
          case 'prev': return s.prev(node.name)
          case 'changed': return s.changed(node.name)
          case 'age': return s.age(node.name)
          case 'quality': return s.quality(node.name)
        }
        break
      case 'unary': {
        const v = this.eval(node.operand)
        if (node.op === '!') return !truthy(v)
        if (typeof v !== 'number') throw operandError('-', v)
        return -v
      }
      case 'binary': return this.binary(node)
      case 'conditional':
        return truthy(this.eval(node.test)) ? this.eval(node.then) : this.eval(node.else)
      case 'member': return this.member(this.eval(node.object), node.key)
      case 'index': {
        const obj = this.eval(node.object)
        const idx = this.eval(node.index)
        if (typeof idx === 'number') {
          if (!Array.isArray(obj)) return obj === null ? null : this.typeFail(`cannot index ${typeName(obj)} with a number`)
          return Number.isInteger(idx) && idx >= 0 && idx < obj.length ? obj[idx] as JsonValue : null
        }
        if (typeof idx === 'string') return this.member(obj, idx)
        return this.typeFail(`index must be a number or string, got ${typeName(idx)}`)
      }
      case 'call': {
        const spec = lookupFunction(node.fn)
        // Unreachable for parsed ASTs; kept so a hand-built AST cannot call out.
        if (spec === undefined) throw evaluationError('ENGINE_EVAL_FORBIDDEN', `unknown function "${node.fn}"`)
        const args = node.args.map((a) => this.eval(a))
        return spec.impl(args, this)
      }
    }
    // Exhaustive switch; a hand-built AST with an unknown kind lands here.
    throw evaluationError('ENGINE_EVAL_TYPE', 'invalid expression node')
  }

  private member (obj: JsonValue, key: string): JsonValue {
    if (FORBIDDEN_KEYS.has(key)) throw evaluationError('ENGINE_EVAL_FORBIDDEN', `forbidden member "${key}"`)
    // Missing values propagate as null so `location.lat` on an unset property
    // is null rather than an error that would silently disable the rule.
    if (obj === null) return null
    if (Array.isArray(obj)) {
      return this.typeFail(`cannot read "${key}" of an array (use len() or [index])`)
    }
    if (!isPlainObject(obj)) return this.typeFail(`cannot read "${key}" of ${typeName(obj)}`)
    return Object.hasOwn(obj, key) ? obj[key] as JsonValue : null
  }

  private typeFail (message: string): never {
    throw evaluationError('ENGINE_EVAL_TYPE', message)
  }

  private binary (node: Extract<Node, { kind: 'binary' }>): JsonValue {
    const op = node.op
    if (op === '&&') {
      const l = this.eval(node.left)
      return truthy(l) ? this.eval(node.right) : l
    }
    if (op === '||') {
      const l = this.eval(node.left)
      return truthy(l) ? l : this.eval(node.right)
    }
    const l = this.eval(node.left)
    const r = this.eval(node.right)
    switch (op) {
      case '==': return jsonEqual(l, r, () => this.charge(1))
      case '!=': return !jsonEqual(l, r, () => this.charge(1))
      case '<': case '<=': case '>': case '>=': return compare(op, l, r)
      case '+':
        if (typeof l === 'number' && typeof r === 'number') return finite(l + r)
        if (typeof l === 'string' || typeof r === 'string') {
          if (!isScalar(l) || !isScalar(r)) throw operandError('+', typeof l === 'string' ? r : l)
          const len = String(l).length + String(r).length
          this.charge(1 + Math.floor(len / 256))
          // Length is checked before building the string so a doubling chain
          // cannot allocate past the cap even once.
          if (len > this.limits.maxStringLength) {
            throw evaluationError('ENGINE_EVAL_LIMIT', `string longer than ${this.limits.maxStringLength} characters`)
          }
          return String(l) + String(r)
        }
        throw operandError('+', typeof l === 'number' ? r : l)
      case '-': return finite(nums(op, l, r, (a, b) => a - b))
      case '*': return finite(nums(op, l, r, (a, b) => a * b))
      case '/': return finite(nums(op, l, r, (a, b) => a / b))
      case '%': return finite(nums(op, l, r, (a, b) => a % b))
    }
  }
}

/** false, null, 0 and "" are false; everything else (including [] and {}) is true. */
export function truthy (v: JsonValue): boolean {
  return !(v === false || v === null || v === 0 || v === '')
}

function isScalar (v: JsonValue): boolean {
  return v === null || typeof v !== 'object'
}

function operandError (op: string, v: JsonValue): EngineError {
  return evaluationError('ENGINE_EVAL_TYPE', `operator "${op}" cannot be applied to ${typeName(v)}`)
}

function nums (op: string, l: JsonValue, r: JsonValue, f: (a: number, b: number) => number): number {
  if (typeof l !== 'number') throw operandError(op, l)
  if (typeof r !== 'number') throw operandError(op, r)
  return f(l, r)
}

function finite (n: number): number {
  // Infinity and NaN are not JSON; results must stay serialisable.
  if (!Number.isFinite(n)) throw evaluationError('ENGINE_EVAL_TYPE', 'arithmetic result is not a finite number')
  return n
}

function compare (op: '<' | '<=' | '>' | '>=', l: JsonValue, r: JsonValue): boolean {
  // A missing value makes an ordering comparison false instead of an error,
  // so `temperature > 80` is simply not true before the first reading.
  if (l === null || r === null) return false
  if (!((typeof l === 'number' && typeof r === 'number') || (typeof l === 'string' && typeof r === 'string'))) {
    throw evaluationError('ENGINE_EVAL_TYPE', `cannot compare ${typeName(l)} with ${typeName(r)}`)
  }
  switch (op) {
    case '<': return l < r
    case '<=': return l <= r
    case '>': return l > r
    case '>=': return l >= r
  }
}
