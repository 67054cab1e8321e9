// Bounds that make every expression terminate quickly and use bounded memory.
// The language has no loops or user functions, so work is bounded by AST size
// times the cost of built-ins; the step budget bounds the built-ins too.

export interface ExpressionLimits {
  /** Longest accepted source text, in characters. */
  maxSourceLength: number
  /** Deepest accepted nesting; keeps the recursive parser and evaluator off the stack limit. */
  maxDepth: number
  /** Evaluation steps (nodes visited plus per-element work in built-ins). */
  maxSteps: number
  /** Longest string any operation may produce. */
  maxStringLength: number
}

export const DEFAULT_EXPRESSION_LIMITS: Readonly<ExpressionLimits> = Object.freeze({
  maxSourceLength: 4096,
  maxDepth: 100,
  maxSteps: 10_000,
  maxStringLength: 65_536,
})
