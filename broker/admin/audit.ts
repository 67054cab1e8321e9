import type { Redis } from 'ioredis'
import { defineScripts } from '../cluster/redis.ts'

/** One admin change: who, what, when, where, and how it ended. Versioned: stored in Redis. */
export interface AuditRecord {
  v: 1
  ts: number
  username: string
  clientId: string
  nodeId: string
  op: string
  /** The arguments, with secrets (passwords) replaced by "***". */
  args: unknown
  ok: boolean
  code?: string
}

export interface AuditLog {
  append(rec: AuditRecord): Promise<void>
  /** Newest first. */
  list(limit: number, opts?: { username?: string, op?: string }): Promise<AuditRecord[]>
}

const SECRET_KEYS = new Set(['password', 'newPassword', 'secret', 'token'])

/** Copies args, masking secrets at any depth. */
export function redact (value: unknown, depth = 0): unknown {
  if (depth > 8 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEYS.has(k) ? '***' : redact(v, depth + 1)
  return out
}

/** Large arguments (module imports) are summarised: the audit keeps who did what, not the bundle. */
export function summarise (args: unknown): unknown {
  const json = JSON.stringify(args) ?? 'null'
  return json.length <= 4096 ? args : { summary: `${json.length} bytes of arguments (not kept)` }
}

export class MemoryAuditLog implements AuditLog {
  private readonly records: AuditRecord[] = []
  constructor (private readonly max: number) {}
  async append (rec: AuditRecord): Promise<void> {
    this.records.unshift(rec)
    if (this.records.length > this.max) this.records.length = this.max
  }

  async list (limit: number, opts: { username?: string, op?: string } = {}): Promise<AuditRecord[]> {
    return this.records.filter((r) => match(r, opts)).slice(0, limit)
  }
}

export class RedisAuditLog implements AuditLog {
  constructor (private readonly redis: Redis, private readonly key: string, private readonly max: number) {
    defineScripts(redis, new URL('./lua/', import.meta.url))
  }

  async append (rec: AuditRecord): Promise<void> {
    await (this.redis as unknown as { appendAudit(...a: Array<string | number>): Promise<number> }).appendAudit(this.key, JSON.stringify(rec), this.max)
  }

  async list (limit: number, opts: { username?: string, op?: string } = {}): Promise<AuditRecord[]> {
    const filtered = opts.username !== undefined || opts.op !== undefined
    const raw = await this.redis.lrange(this.key, 0, filtered ? -1 : limit - 1)
    const out: AuditRecord[] = []
    for (const json of raw) {
      try {
        const r = JSON.parse(json) as AuditRecord
        if (r.v === 1 && match(r, opts)) out.push(r)
      } catch { /* a record of a future version or damaged: skipped */ }
      if (out.length >= limit) break
    }
    return out
  }
}

function match (r: AuditRecord, opts: { username?: string, op?: string }): boolean {
  return (opts.username === undefined || r.username === opts.username) && (opts.op === undefined || r.op === opts.op)
}
