import { z } from 'zod'
import { op } from '../operation.ts'
import { id, page } from './common.ts'

/** sessions/*: persistent sessions (clean session 0), connected or not. */
export const sessionOps = [
  op('sessions/list', z.strictObject(page), false, async (ctx, a) => ctx.state.listSessions(a)),
  op('sessions/delete', z.strictObject({ clientId: id }), true, async (ctx, a) => {
    await ctx.state.deleteSession(a.clientId)
    return { clientId: a.clientId, deleted: true }
  }),
]
