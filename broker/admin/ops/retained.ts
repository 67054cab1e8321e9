import { z } from 'zod'
import { ThingmeshError } from '../../errors.ts'
import { filterProblem, topicProblem } from '../../mqtt/topics.ts'
import { op } from '../operation.ts'
import { limit } from './common.ts'

const filter = z.string().max(65535).refine((f) => filterProblem(f) === null, { message: 'not a valid MQTT topic filter' })
const topic = z.string().max(65535).refine((t) => topicProblem(t) === null, { message: 'not a valid MQTT topic' })

/** retained/*: the retained messages (payload previews of 1 KiB). */
export const retainedOps = [
  op('retained/list', z.strictObject({ filter: filter.default('#'), limit: limit(100, 10_000) }), false, async (ctx, a) => ctx.state.listRetained(a.filter, a.limit)),
  op('retained/delete', z.strictObject({ topic }), true, async (ctx, a) => {
    if (!(await ctx.state.deleteRetained(a.topic))) throw new ThingmeshError('ADMIN_NOT_FOUND', `no retained message on '${a.topic}'`)
    return { topic: a.topic, deleted: true }
  }),
]
