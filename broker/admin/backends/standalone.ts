import type { Readable } from 'node:stream'
import { ThingmeshError } from '../../errors.ts'
import { pageOf, type ClientView, type NodeView, type Page, type RetainedView, type SessionView, type StateBackend } from '../context.ts'
import { readRetained } from './retained.ts'

interface LocalClient { id: string, clean: boolean, closed: boolean, subscriptions: Record<string, unknown>, close(): void }

export interface StandalonePort {
  nodeId: string
  brokerId: string
  host: string
  port: () => number
  load(): Record<string, number>
  clients(): Record<string, LocalClient>
  persistence: {
    createRetainedStream(filter: string): Readable
    storeRetained(packet: object): Promise<void>
    subscriptionsByClient(client: { id: string }): Promise<unknown[] | null>
    cleanSubscriptions(client: { id: string }): Promise<unknown>
  }
  on(event: 'client' | 'clientDisconnect', fn: (c: LocalClient) => void): void
  /** Tells the MQTT hooks the session is gone, so the next CONNACK says "no session". */
  forgetSession(clientId: string): void
}

/** The standalone node's state, in memory: the same operations, one node. */
export class StandaloneState implements StateBackend {
  readonly mode = 'standalone' as const
  /** Persistent sessions seen since start: clientId -> disconnected at (null while connected). */
  private readonly sessions = new Map<string, number | null>()

  constructor (private readonly port: StandalonePort) {
    port.on('client', (c) => { if (c.clean) this.sessions.delete(c.id); else this.sessions.set(c.id, null) })
    port.on('clientDisconnect', (c) => { if (!c.clean && this.sessions.has(c.id)) this.sessions.set(c.id, Date.now()) })
  }

  async nodes (): Promise<NodeView[]> {
    const p = this.port
    return [{ nodeId: p.nodeId, brokerId: p.brokerId, host: p.host, port: p.port(), load: p.load(), self: true }]
  }

  async listClients (page: Page & { nodeId?: string }): Promise<ClientView[]> {
    if (page.nodeId !== undefined && page.nodeId !== this.port.nodeId) return []
    const views = Object.values(this.port.clients()).filter((c) => !c.closed)
      .map((c) => ({ clientId: c.id, nodeId: this.port.nodeId, brokerId: this.port.brokerId, persistent: !c.clean }))
    return pageOf(views, (v) => v.clientId, page)
  }

  async kickClient (clientId: string): Promise<{ nodeId: string, confirmed: boolean }> {
    const c = this.port.clients()[clientId]
    if (!c || c.closed) throw new ThingmeshError('ADMIN_NOT_FOUND', `client '${clientId}' is not connected`)
    c.close()
    return { nodeId: this.port.nodeId, confirmed: true }
  }

  async listSessions (page: Page): Promise<SessionView[]> {
    const chosen = pageOf([...this.sessions.keys()], (id) => id, page)
    return Promise.all(chosen.map(async (clientId) => {
      const at = this.sessions.get(clientId) ?? null
      const subs = await this.port.persistence.subscriptionsByClient({ id: clientId })
      return { clientId, connected: at === null, nodeId: at === null ? this.port.nodeId : null, disconnectedAt: at, subscriptions: subs?.length ?? 0, queued: 0 }
    }))
  }

  async deleteSession (clientId: string): Promise<void> {
    if (!this.sessions.has(clientId)) throw new ThingmeshError('ADMIN_NOT_FOUND', `no session '${clientId}'`)
    if (this.sessions.get(clientId) === null) throw new ThingmeshError('ADMIN_SESSION_CONNECTED', `client '${clientId}' is connected; kick it first`)
    await this.port.persistence.cleanSubscriptions({ id: clientId })
    this.sessions.delete(clientId)
    this.port.forgetSession(clientId)
  }

  async listRetained (filter: string, limit: number): Promise<RetainedView[]> {
    return readRetained(this.port.persistence, filter, limit)
  }

  async deleteRetained (topic: string): Promise<boolean> {
    const found = await readRetained(this.port.persistence, topic, 1)
    if (found.length === 0) return false
    // An empty retained payload deletes it [MQTT-3.3.1-10].
    await this.port.persistence.storeRetained({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true })
    return true
  }
}
