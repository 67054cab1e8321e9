import type { EngineApi } from '../../engine/runtime/api.ts'
import type { UserStore } from '../auth/index.ts'
import type { AuditLog } from './audit.ts'

/** Who sent a request. */
export interface Caller { username: string, clientId: string }

export interface NodeView { nodeId: string, brokerId: string, host: string, port: number, load: Record<string, number>, self: boolean }
export interface ClientView { clientId: string, nodeId: string, brokerId: string, persistent: boolean }
export interface SessionView { clientId: string, connected: boolean, nodeId: string | null, disconnectedAt: number | null, subscriptions: number, queued: number }
export interface RetainedView { topic: string, qos: number, bytes: number, payload: string, truncated: boolean }
export interface Page { limit: number, after?: string }

/**
 * Broker state as the admin operations see it, cluster-wide. One
 * implementation reads Redis (any node answers for all), one reads the
 * standalone node's memory.
 */
export interface StateBackend {
  readonly mode: 'cluster' | 'standalone'
  nodes(): Promise<NodeView[]>
  listClients(page: Page & { nodeId?: string }): Promise<ClientView[]>
  /** Disconnects the client wherever it is; throws ADMIN_NOT_FOUND if it is not connected. */
  kickClient(clientId: string): Promise<{ nodeId: string, confirmed: boolean }>
  listSessions(page: Page): Promise<SessionView[]>
  /** Deletes a persistent session that no client holds; ADMIN_NOT_FOUND / ADMIN_SESSION_CONNECTED. */
  deleteSession(clientId: string): Promise<void>
  listRetained(filter: string, limit: number): Promise<RetainedView[]>
  deleteRetained(topic: string): Promise<boolean>
}

export interface AdminContext {
  nodeId: string
  state: StateBackend
  users: UserStore
  audit: AuditLog
  /** The thing engine, if this node runs one. */
  engine(): EngineApi | undefined
}

/** Paging over sorted ids: the page after `after`, at most `limit`. */
export function pageOf<T> (items: T[], idOf: (t: T) => string, page: Page): T[] {
  const sorted = items.sort((a, b) => idOf(a) < idOf(b) ? -1 : idOf(a) > idOf(b) ? 1 : 0)
  const start = page.after === undefined ? 0 : sorted.findIndex((t) => idOf(t) > page.after!)
  return start < 0 ? [] : sorted.slice(start, start + page.limit)
}

const PREVIEW = 1024

export function retainedView (p: { topic: string, qos: number, payload: Buffer | string }): RetainedView {
  const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : p.payload
  return { topic: p.topic, qos: p.qos, bytes: payload.length, payload: payload.subarray(0, PREVIEW).toString('utf8'), truncated: payload.length > PREVIEW }
}
