// Errors of the engine runtime (I/O side). The pure core's catalogue is
// engine/errors.ts; these codes are about ownership and storage, and never
// reach devices (a device sees a missing PUBACK and resends).

export const RUNTIME_ERRORS = {
  ENGINE_FENCED: 'this node no longer holds the partition lease; the write was refused',
  ENGINE_CHECKPOINT_MOVED: 'the partition checkpoint is not where this node left it',
  ENGINE_BACKLOG_FULL: 'the partition log is full; the write was not accepted',
  ENGINE_NOT_READY: 'the engine is not running on this node',
  ENGINE_STORE_FAILED: 'the engine store could not be reached',
  ENGINE_DEFINITIONS_LOST: 'the store lost definition versions this node had applied (a failover); this node now runs the store\'s',
} as const

export type RuntimeErrorCode = keyof typeof RUNTIME_ERRORS

export class RuntimeError extends Error {
  readonly code: RuntimeErrorCode
  constructor (code: RuntimeErrorCode, message: string = RUNTIME_ERRORS[code]) {
    super(message)
    this.name = 'RuntimeError'
    this.code = code
  }
}

export function runtimeCodeOf (err: unknown): RuntimeErrorCode | undefined {
  if (err instanceof RuntimeError) return err.code
  const m = /^(ENGINE_[A-Z_]+)/.exec((err as Error | undefined)?.message ?? '')
  return m !== null && m[1] !== undefined && m[1] in RUNTIME_ERRORS ? m[1] as RuntimeErrorCode : undefined
}
