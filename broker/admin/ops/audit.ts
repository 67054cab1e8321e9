import { z } from 'zod'
import { op } from '../operation.ts'
import { limit } from './common.ts'

/** audit/list: the newest admin changes first. */
export const auditOps = [
  op('audit/list', z.strictObject({ limit: limit(100, 10_000), username: z.string().optional(), op: z.string().optional() }), false,
    async (ctx, a) => ctx.audit.list(a.limit, { username: a.username, op: a.op })),
]
