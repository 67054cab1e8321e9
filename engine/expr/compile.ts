// Compiling and evaluating single expressions: the entry points rules use.

import { compileError } from './tokenizer.ts'
import { EngineError } from '../errors.ts'
import type { JsonValue } from '../json.ts'
import type { Node } from './ast.ts'
import { Evaluation, type EvalScope } from './evaluator.ts'
import { DEFAULT_EXPRESSION_LIMITS, type ExpressionLimits } from './limits.ts'
import { Parser } from './parser.ts'

export interface CompileOptions {
  /** Property names the expression may reference; omit to allow any. */
  properties?: ReadonlySet<string>
  limits?: Partial<ExpressionLimits>
}

/** Which properties an expression reads; decides when a rule is re-evaluated. */
export interface References {
  /** Every property read through any view (value, prev, changed, age, quality). */
  properties: ReadonlySet<string>
  /** True if the result can change with time alone (`now` or `age.x`). */
  timeDependent: boolean
}

export interface CompiledExpression {
  readonly source: string
  readonly ast: Node
  readonly references: References
}

export function resolveLimits (partial?: Partial<ExpressionLimits>): ExpressionLimits {
  // Rules evaluate with the defaults on every input: no copy then.
  if (partial === undefined || partial === DEFAULT_EXPRESSION_LIMITS) return DEFAULT_EXPRESSION_LIMITS
  return { ...DEFAULT_EXPRESSION_LIMITS, ...partial }
}

/** Throws EngineError ENGINE_RULE_COMPILE with a position on any error. */
export function compileExpression (source: string, options: CompileOptions = {}): CompiledExpression {
  const limits = resolveLimits(options.limits)
  if (source.length > limits.maxSourceLength) {
    throw compileError(source, limits.maxSourceLength, `expression longer than ${limits.maxSourceLength} characters`)
  }
  const parseOpts = options.properties === undefined
    ? { maxDepth: limits.maxDepth }
    : { maxDepth: limits.maxDepth, properties: options.properties }
  const ast = new Parser(source, 0, parseOpts).parseAll()
  return { source, ast, references: collectReferences([ast]) }
}

export function collectReferences (roots: readonly Node[]): References {
  const properties = new Set<string>()
  let timeDependent = false
  const stack = [...roots]
  // Iterative walk: AST height is bounded, but no need to rely on it here.
  while (stack.length > 0) {
    const n = stack.pop() as Node
    switch (n.kind) {
      case 'property': properties.add(n.name); break
      case 'view':
        properties.add(n.name)
        if (n.ns === 'age') timeDependent = true
        break
      case 'now': timeDependent = true; break
      case 'unary': stack.push(n.operand); break
      case 'binary': stack.push(n.left, n.right); break
      case 'conditional': stack.push(n.test, n.then, n.else); break
      case 'member': stack.push(n.object); break
      case 'index': stack.push(n.object, n.index); break
      case 'call': stack.push(...n.args); break
      case 'literal': case 'thing': break
    }
  }
  return { properties, timeDependent }
}

/**
 * Evaluates a compiled expression. Throws EngineError with ENGINE_EVAL_* codes;
 * any other exception would be an engine bug, and is wrapped so callers only
 * ever see EngineError.
 */
export function evaluateExpression (expr: CompiledExpression, scope: EvalScope, limits?: Partial<ExpressionLimits>): JsonValue {
  const ev = new Evaluation(scope, resolveLimits(limits))
  try {
    return ev.eval(expr.ast)
  } catch (e) {
    throw guardedError(e)
  }
}

export function runGuarded<T> (f: () => T): T {
  try {
    return f()
  } catch (e) {
    throw guardedError(e)
  }
}

function guardedError (e: unknown): EngineError {
  if (e instanceof EngineError) return e
  // RangeError (stack) cannot happen with bounded AST height, but if it
  // ever did, it must disable one rule, not crash the node.
  return new EngineError('ENGINE_EVAL_LIMIT', `evaluation failed: ${(e as Error).message}`)
}
