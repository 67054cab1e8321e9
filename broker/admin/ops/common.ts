import { z } from 'zod'
import { ThingmeshError } from '../../errors.ts'
import type { EngineApi } from '../../../engine/runtime/api.ts'
import type { AdminContext } from '../context.ts'

export const limit = (def = 100, max = 10_000) => z.number().int().min(1).max(max).default(def)
export const id = z.string().min(1).max(1024)
export const page = { limit: limit(), after: z.string().max(65535).optional() }

export function engineOf (ctx: AdminContext): EngineApi {
  const e = ctx.engine()
  if (!e) throw new ThingmeshError('ADMIN_ENGINE_UNAVAILABLE')
  return e
}

export function found<T> (value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new ThingmeshError('ADMIN_NOT_FOUND', `${what} not found`)
  return value
}
