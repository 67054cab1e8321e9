import type { z } from 'zod'
import type { AdminContext, Caller } from './context.ts'

/**
 * One admin operation: its name (the topic after `$admin/`), the zod schema
 * of its arguments, and whether it changes state (then it is audited). An
 * operation validates everything before its first write, and each write is
 * one atomic step, so a failed request leaves nothing half applied.
 */
export interface Operation {
  name: string
  mutates: boolean
  schema: z.ZodType
  run(ctx: AdminContext, args: unknown, caller: Caller): Promise<unknown>
}

export function op<S extends z.ZodType> (name: string, schema: S, mutates: boolean, run: (ctx: AdminContext, args: z.infer<S>, caller: Caller) => Promise<unknown>): Operation {
  return { name, schema, mutates, run: run as Operation['run'] }
}
