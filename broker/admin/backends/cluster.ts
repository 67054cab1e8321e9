import type { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import type { Keys } from '../../cluster/keys.ts'
import { defineScripts } from '../../cluster/redis.ts'
import { ThingmeshError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import { pageOf, type ClientView, type NodeView, type Page, type RetainedView, type SessionView, type StateBackend } from '../context.ts'
import { readRetained } from './retained.ts'

/** A control message asking the holder of a connection to close it. Versioned: crosses processes. */
export interface KickNotice { v: 1, t: 'kick', c: string, b: string, e: number }

export interface ClusterPort {
  cmd: Redis
  /** The pub/sub connection that already carries the control channel. */
  sub: Redis
  keys: Keys
  brokerId: string
  members(): Array<{ nodeId: string, brokerId: string, host: string, port: number, load: Record<string, number> }>
  persistence: { createRetainedStream(filter: string): Readable, deleteRetained(topic: string): Promise<boolean> }
  waitReleased(clientId: string, epoch: number, ms: number): Promise<boolean>
  /** Closes the local connection of clientId if it is the one with this epoch; false if none. */
  closeLocal(clientId: string, epoch: number): boolean
}

const KICK_CONFIRM_MS = 3000

/**
 * Cluster state from Redis, so any node answers for all. Connections are in
 * the owners hash ("brokerId|epoch|up|persistent"); a kick of a client held by
 * another node goes as a versioned control message to that node, and is
 * confirmed by the release notice it sends when the connection is gone.
 */
export class ClusterState implements StateBackend {
  readonly mode = 'cluster' as const

  constructor (private readonly port: ClusterPort, private readonly log: Logger) {
    defineScripts(port.cmd, new URL('../lua/', import.meta.url))
    port.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => {
      if (channel.toString() !== port.keys.controlChannel) return
      // Cheap pre-check: most control traffic is subscription changes.
      if (message.indexOf('"kick"') < 0) return
      let n: Partial<KickNotice>
      try { n = JSON.parse(message.toString()) } catch { return }
      if (n.v !== 1 || n.t !== 'kick' || n.b !== port.brokerId || typeof n.c !== 'string' || typeof n.e !== 'number') return
      const closed = port.closeLocal(n.c, n.e)
      log.info({ event: 'admin.kick_applied', clientId: n.c, closed }, 'closed a client on an admin request from another node')
    })
  }

  async nodes (): Promise<NodeView[]> {
    return this.port.members().map((m) => ({ nodeId: m.nodeId, brokerId: m.brokerId, host: m.host, port: m.port, load: m.load, self: m.brokerId === this.port.brokerId }))
      .sort((a, b) => a.nodeId.localeCompare(b.nodeId))
  }

  private async owners (): Promise<Map<string, { brokerId: string, epoch: number, up: boolean, persistent: boolean }>> {
    const out = new Map<string, { brokerId: string, epoch: number, up: boolean, persistent: boolean }>()
    let cursor = '0'
    do {
      const [next, flat] = await this.port.cmd.hscan(this.port.keys.owners, cursor, 'COUNT', 1000)
      cursor = next
      for (let i = 0; i < flat.length; i += 2) {
        const [brokerId, e, state, p] = flat[i + 1].split('|')
        out.set(flat[i], { brokerId, epoch: Number(e), up: state === 'up', persistent: p === '1' })
      }
    } while (cursor !== '0')
    return out
  }

  private nodeIdOf (brokerId: string): string {
    return this.port.members().find((m) => m.brokerId === brokerId)?.nodeId ?? brokerId.split('~')[0]
  }

  async listClients (page: Page & { nodeId?: string }): Promise<ClientView[]> {
    const views: ClientView[] = []
    for (const [clientId, o] of await this.owners()) {
      if (!o.up) continue
      const nodeId = this.nodeIdOf(o.brokerId)
      if (page.nodeId !== undefined && nodeId !== page.nodeId) continue
      views.push({ clientId, nodeId, brokerId: o.brokerId, persistent: o.persistent })
    }
    return pageOf(views, (v) => v.clientId, page)
  }

  async kickClient (clientId: string): Promise<{ nodeId: string, confirmed: boolean }> {
    const rec = await this.port.cmd.hget(this.port.keys.owners, clientId)
    const [brokerId, e, state] = (rec ?? '').split('|')
    if (!rec || state !== 'up') throw new ThingmeshError('ADMIN_NOT_FOUND', `client '${clientId}' is not connected`)
    const epoch = Number(e)
    const released = this.port.waitReleased(clientId, epoch, KICK_CONFIRM_MS)
    if (brokerId === this.port.brokerId) {
      this.port.closeLocal(clientId, epoch)
    } else {
      const notice: KickNotice = { v: 1, t: 'kick', c: clientId, b: brokerId, e: epoch }
      await this.port.cmd.publish(this.port.keys.controlChannel, JSON.stringify(notice))
    }
    return { nodeId: this.nodeIdOf(brokerId), confirmed: await released }
  }

  async listSessions (page: Page): Promise<SessionView[]> {
    const { cmd, keys } = this.port
    const owners = await this.owners()
    const gone = await cmd.zrange(keys.sessions, 0, -1, 'WITHSCORES')
    const disconnectedAt = new Map<string, number>()
    for (let i = 0; i < gone.length; i += 2) disconnectedAt.set(gone[i], Number(gone[i + 1]))
    const ids = new Set<string>(disconnectedAt.keys())
    for (const [id, o] of owners) if (o.persistent) ids.add(id)
    const chosen = pageOf([...ids], (id) => id, page)
    const counts = await Promise.all(chosen.map((id) => Promise.all([cmd.hlen(keys.subsOf(id)), cmd.llen(keys.queueOf(id))])))
    return chosen.map((clientId, i) => {
      const o = owners.get(clientId)
      const connected = o?.up === true
      return {
        clientId,
        connected,
        nodeId: connected ? this.nodeIdOf(o!.brokerId) : null,
        disconnectedAt: connected ? null : disconnectedAt.get(clientId) ?? null,
        subscriptions: counts[i][0],
        queued: counts[i][1],
      }
    })
  }

  async deleteSession (clientId: string): Promise<void> {
    const { cmd, keys } = this.port
    const res = await (cmd as unknown as { deleteSession(...a: string[]): Promise<number> })
      .deleteSession(keys.sessions, keys.subClients, keys.subVersion, keys.owners, clientId, keys.prefix, keys.controlChannel)
    if (res === -1) throw new ThingmeshError('ADMIN_SESSION_CONNECTED', `client '${clientId}' is connected; kick it first`)
    if (res === 0) throw new ThingmeshError('ADMIN_NOT_FOUND', `no session '${clientId}'`)
  }

  async listRetained (filter: string, limit: number): Promise<RetainedView[]> {
    return readRetained(this.port.persistence, filter, limit)
  }

  async deleteRetained (topic: string): Promise<boolean> {
    return this.port.persistence.deleteRetained(topic)
  }
}
