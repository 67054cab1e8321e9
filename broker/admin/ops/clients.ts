import { z } from 'zod'
import { op } from '../operation.ts'
import { id, page } from './common.ts'

/** clients/*: connected clients cluster-wide, and disconnecting one wherever it is. */
export const clientOps = [
  op('clients/list', z.strictObject({ ...page, nodeId: z.string().optional() }), false, async (ctx, a) => {
    return ctx.state.listClients(a)
  }),
  op('clients/kick', z.strictObject({ clientId: id }), true, async (ctx, a) => {
    const r = await ctx.state.kickClient(a.clientId)
    return { clientId: a.clientId, ...r }
  }),
]
