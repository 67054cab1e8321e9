import { z } from 'zod'
import { op } from '../operation.ts'

/** cluster/status: the live nodes with their load, and the engine's partitions and definition version. */
export const clusterOps = [
  op('cluster/status', z.strictObject({}), false, async (ctx) => {
    const nodes = await ctx.state.nodes()
    const engine = ctx.engine()
    return {
      mode: ctx.state.mode,
      answeredBy: ctx.nodeId,
      nodes,
      engine: engine ? await engine.status() : null,
    }
  }),
]
