import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { isThingmeshError } from '../errors.ts'
import type { AdminContext, Caller } from './context.ts'
import type { Operation } from './operation.ts'
import { failure, parseRequest, success, type AdminError, type AdminReply } from './protocol.ts'
import { redact, summarise } from './audit.ts'
import { allOperations } from './ops/index.ts'

export interface AdminService {
  readonly operations: readonly string[]
  /** Answers one request; never throws. */
  handle(caller: Caller, operation: string, payload: Buffer): Promise<AdminReply>
}

export function createAdminService (ctx: AdminContext, log: Logger, metrics: Metrics): AdminService {
  const ops = new Map<string, Operation>(allOperations.map((o) => [o.name, o]))

  async function handle (caller: Caller, name: string, payload: Buffer): Promise<AdminReply> {
    const req = parseRequest(payload)
    if (!req.ok) return done(failure(req.id, req.error), name)
    const operation = ops.get(name)
    if (!operation) {
      return done(failure(req.id, { code: 'ADMIN_UNKNOWN_OPERATION', message: `no operation '${name.slice(0, 100)}'; known: ${[...ops.keys()].join(', ')}` }), name)
    }
    const parsed = operation.schema.safeParse(req.args)
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message }))
      return done(failure(req.id, { code: 'ADMIN_INVALID_ARGUMENTS', message: problems.map((p) => `${p.path || 'args'}: ${p.message}`).join('; '), details: problems }), name)
    }
    let reply: AdminReply
    try {
      reply = success(req.id, await operation.run(ctx, parsed.data, caller))
    } catch (err) {
      reply = failure(req.id, toAdminError(err, log, name))
    }
    if (operation.mutates) {
      const rec = {
        v: 1 as const, ts: Date.now(), username: caller.username, clientId: caller.clientId, nodeId: ctx.nodeId, op: name,
        args: summarise(redact(parsed.data)), ok: reply.ok, ...(reply.ok ? {} : { code: reply.error.code }),
      }
      log.info({ event: 'admin.change', ...rec }, 'admin change')
      try { await ctx.audit.append(rec) } catch (err) {
        log.error({ event: 'admin.audit_failed', op: name, username: caller.username, err: (err as Error).message }, 'could not store the audit record')
      }
    }
    return done(reply, name)
  }

  function done (reply: AdminReply, name: string): AdminReply {
    metrics.adminRequests.inc({ result: reply.ok ? 'ok' : reply.error.code })
    if (!reply.ok) log.debug({ event: 'admin.refused', op: name.slice(0, 100), code: reply.error.code }, 'admin request failed')
    return reply
  }

  return { operations: [...ops.keys()], handle }
}

/** Catalogued errors (ThingmeshError, EngineError) keep their code; Redis failures and bugs get one. */
export function toAdminError (err: unknown, log: Logger, op: string): AdminError {
  if (isThingmeshError(err)) return { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) }
  const e = err as Error & { code?: unknown, problems?: unknown, path?: unknown }
  if (typeof e?.code === 'string' && /^ENGINE_[A-Z_]+$/.test(e.code)) {
    return { code: e.code, message: e.message, ...(e.problems ? { details: { problems: e.problems } } : e.path ? { details: { path: e.path } } : {}) }
  }
  const message = String(e?.message ?? err)
  if (/Connection is closed|Stream isn't writeable|ECONNREFUSED|Command timed out|MaxRetriesPerRequest|enableOfflineQueue/i.test(message)) {
    // Every change is one atomic Redis step: it happened entirely or not at all.
    return { code: 'ADMIN_UNAVAILABLE', message: 'Redis cannot be reached; each change is atomic, so list to see whether it was applied, then retry' }
  }
  log.error({ event: 'admin.internal_error', op, err: message, stack: e?.stack }, 'admin operation failed unexpectedly')
  return { code: 'ADMIN_INTERNAL', message: 'the operation failed unexpectedly; see the node log' }
}
