import { z } from 'zod'
import { op } from '../operation.ts'
import { engineOf, found, id, limit } from './common.ts'

/** A definition is passed as the arguments themselves; the engine validates it (ENGINE_* codes). */
const definition = z.record(z.string(), z.unknown())
const byId = z.strictObject({ id })

/** templates/*, things/*, rules/*, modules/*, history/query, alerts/*: the thing engine's operations. */
export const engineOps = [
  op('templates/put', definition, true, async (ctx, a) => engineOf(ctx).putTemplate(a)),
  op('templates/get', byId, false, async (ctx, a) => found(await engineOf(ctx).getTemplate(a.id), `template '${a.id}'`)),
  op('templates/list', z.strictObject({}), false, async (ctx) => engineOf(ctx).listTemplates()),
  op('templates/delete', byId, true, async (ctx, a) => engineOf(ctx).deleteTemplate(a.id)),

  op('things/put', definition, true, async (ctx, a) => engineOf(ctx).putThing(a)),
  op('things/get', byId, false, async (ctx, a) => found(await engineOf(ctx).getThing(a.id), `thing '${a.id}'`)),
  op('things/list', z.strictObject({ template: z.string().optional(), limit: limit(100, 10_000).optional(), after: z.string().optional() }), false, async (ctx, a) => engineOf(ctx).listThings(a)),
  op('things/delete', byId, true, async (ctx, a) => engineOf(ctx).deleteThing(a.id)),

  op('rules/put', definition, true, async (ctx, a) => engineOf(ctx).putRule(a)),
  op('rules/get', byId, false, async (ctx, a) => found(await engineOf(ctx).getRule(a.id), `rule '${a.id}'`)),
  op('rules/list', z.strictObject({}), false, async (ctx) => engineOf(ctx).listRules()),
  op('rules/delete', byId, true, async (ctx, a) => engineOf(ctx).deleteRule(a.id)),

  op('modules/import', z.strictObject({ bundle: z.unknown(), dryRun: z.boolean().default(false) }), true, async (ctx, a) => engineOf(ctx).importModule(a.bundle, { dryRun: a.dryRun })),
  op('modules/export', z.strictObject({}), false, async (ctx) => engineOf(ctx).exportModule()),

  op('history/query', z.strictObject({ thingId: id, property: id, from: z.number().optional(), to: z.number().optional(), limit: limit(1000, 100_000) }), false,
    async (ctx, a) => engineOf(ctx).historyQuery(a.thingId, a.property, a.from, a.to, a.limit)),

  op('alerts/list', z.strictObject({ thingId: z.string().optional(), state: z.enum(['active', 'acknowledged', 'cleared']).optional() }), false, async (ctx, a) => engineOf(ctx).listAlerts(a)),
  op('alerts/ack', z.strictObject({ thingId: id, alert: id }), true, async (ctx, a, caller) => {
    await engineOf(ctx).ackAlert(a.thingId, a.alert, caller.username)
    return { thingId: a.thingId, alert: a.alert, acknowledgedBy: caller.username }
  }),
]
