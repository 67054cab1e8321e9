// The engine's error catalogue. Codes are stable: the runtime forwards them to
// devices and admin clients, so renaming one is a breaking change.

export const ENGINE_ERRORS = {
  // Property writes (reach the device / application that wrote)
  ENGINE_BAD_JSON: 'payload is not valid JSON',
  ENGINE_BAD_WRITE: 'write is malformed (bad envelope, timestamp or quality)',
  ENGINE_UNKNOWN_PROPERTY: 'property is not defined on this thing',
  ENGINE_TYPE_MISMATCH: 'value does not have the property type',
  ENGINE_OUT_OF_RANGE: 'value is outside the property min/max',
  ENGINE_NOT_IN_ENUM: 'value is not one of the allowed values',
  ENGINE_VALUE_TOO_LARGE: 'value exceeds the size limit',
  ENGINE_STALE_VALUE: 'value timestamp is older than the current value',
  // Expressions and rules
  ENGINE_RULE_COMPILE: 'expression does not compile',
  ENGINE_EVAL_BUDGET: 'evaluation exceeded its step budget',
  ENGINE_EVAL_LIMIT: 'evaluation exceeded a size limit',
  ENGINE_EVAL_TYPE: 'operation applied to a value of the wrong type',
  ENGINE_EVAL_FORBIDDEN: 'access to a forbidden member',
  ENGINE_CASCADE_LIMIT: 'rule-triggered writes nested too deeply',
  // Definitions and module import (reach admin clients)
  ENGINE_INVALID_DEFINITION: 'definition does not match the schema',
  ENGINE_UNSUPPORTED_VERSION: 'module bundle version is not supported',
  ENGINE_DUPLICATE_ID: 'id is declared more than once',
  ENGINE_UNKNOWN_TEMPLATE: 'template does not exist',
  ENGINE_UNKNOWN_THING: 'thing does not exist',
  ENGINE_UNKNOWN_RULE: 'rule does not exist',
  ENGINE_TEMPLATE_CYCLE: 'template inheritance forms a cycle',
  ENGINE_PROPERTY_CONFLICT: 'property redeclared with a different type',
  ENGINE_IN_USE: 'definition is still referenced',
  ENGINE_RULE_NEVER_TRIGGERED: 'rule references no property and has no schedule',
  ENGINE_DEFINITIONS_REJECTED: 'definition change rejected; see problems',
  // Versions, alerts, partitions
  ENGINE_VERSION_CONFLICT: 'expected version does not match the current version',
  ENGINE_ALERT_TRANSITION: 'alert transition not allowed from the current state',
  ENGINE_UNKNOWN_ALERT: 'alert does not exist on this thing',
  ENGINE_INVALID_ARGUMENT: 'invalid argument',
} as const

export type EngineErrorCode = keyof typeof ENGINE_ERRORS

/** Line/column are 1-based, offset 0-based (UTF-16 code units, like JS strings). */
export interface SourcePosition {
  offset: number
  line: number
  column: number
}

/**
 * One problem found while validating. `path` is a JSON path into whatever was
 * validated (`things[3].template`), empty when the problem is about the whole.
 */
export interface Problem {
  code: EngineErrorCode
  path: string
  message: string
  position?: SourcePosition
}

export class EngineError extends Error {
  readonly code: EngineErrorCode
  readonly position?: SourcePosition
  readonly problems?: readonly Problem[]
  /** Where inside the checked value the error is (e.g. `payload.msg` of a template). */
  readonly path?: string

  constructor (
    code: EngineErrorCode,
    message: string,
    extra: { position?: SourcePosition, problems?: readonly Problem[], path?: string } = {}
  ) {
    super(message)
    this.name = 'EngineError'
    this.code = code
    if (extra.position !== undefined) this.position = extra.position
    if (extra.problems !== undefined) this.problems = extra.problems
    if (extra.path !== undefined) this.path = extra.path
  }

  toProblem (path = ''): Problem {
    const p: Problem = { code: this.code, path, message: this.message }
    if (this.position !== undefined) p.position = this.position
    return p
  }
}

/**
 * An EngineError for a failed evaluation, made without a stack trace. These
 * are data, not defects: a rule over a property that has no value yet fails
 * on every input that triggers it, and what is reported is the code, the
 * message and the rule, never the stack. Capturing one per failure was 3.5%
 * of a node's CPU in bench:engine (whose `p1 > p2` fails until p2 is written).
 */
export function evaluationError (code: EngineErrorCode, message: string): EngineError {
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return new EngineError(code, message)
  } finally {
    Error.stackTraceLimit = limit
  }
}

export function isEngineError (e: unknown): e is EngineError {
  return e instanceof EngineError
}

/** `problem.path: message` — the form used in admin replies and logs. */
export function formatProblem (p: Problem): string {
  return p.path === '' ? p.message : `${p.path}: ${p.message}`
}
