// Public API of the embedded thing engine's pure core. The runtime (Redis,
// MQTT, partitions, leases) builds on these; nothing here does I/O or reads
// the clock: time is always an argument.

export { EngineError, ENGINE_ERRORS, isEngineError, formatProblem, type EngineErrorCode, type Problem, type SourcePosition } from './errors.ts'
export type { JsonValue, JsonObject, JsonPrimitive } from './json.ts'

// Definitions: schemas, inheritance, registry, module import
export {
  PROPERTY_TYPES, QUALITIES, SEVERITIES, checkValue, DEFAULT_VALUE_LIMITS,
  type PropertyType, type Quality, type Severity, type ChangePolicy,
  type PropertyDef, type TemplateDef, type ThingDef, type RuleDef, type ActionDef, type ModuleBundle, type ValueLimits,
} from './model/index.ts'
export {
  Definitions, validateModule, validateModuleText, importModule, SUPPORTED_MODULE_VERSIONS,
  type DefinitionChange, type DefinitionsSnapshot, type ResolvedThing, type ApplyResult, type ApplyOptions, type ModuleValidation,
} from './definitions/index.ts'

// Expressions and rules
export {
  compileExpression, evaluateExpression, compileStringTemplate, compileJsonTemplate, renderTemplate, DEFAULT_EXPRESSION_LIMITS, FUNCTIONS,
  type CompiledExpression, type CompiledTemplate, type EvalScope, type ExpressionLimits,
} from './expr/index.ts'
export { compileRule, type CompiledRule, type CompiledAction } from './rules/index.ts'

// Thing processing
export {
  initialState, reconcileState, cloneState, applyWrite, parseWrite, countsAsChange, processInput, nextDueAt, DEFAULT_PROCESSOR_LIMITS, THING_STATE_FORMAT,
  type ThingState, type PropertyState, type Sample, type RuleMemory, type ThingInput, type WriteSource, type ProcessContext, type ProcessResult,
  type ProcessorLimits, type Rejection, type Effect, type EffectType, type PropertyWrite, type PropertyChange, type RawWrite, type WriteRejection, type WriteResult,
} from './thing/index.ts'
export { raiseAlert, acknowledgeAlert, clearAlert, type AlertRecord, type AlertStatus, type AlertTransition } from './alerts/index.ts'
export { emptyShadow, setDesired, computeDelta, checkVersion, deltaIsEmpty, type ShadowState, type DesiredEntry, type Delta } from './shadow/index.ts'

// Partitioning
export { partitionOf, fnv1a32, assignPartitions, diffAssignments, partitionsOf, type Assignment, type PartitionMove } from './partition/index.ts'
