import type { Redis } from 'ioredis'
import type { Keys } from './keys.ts'

interface Scripted {
  claimSession(...args: string[]): Promise<[number, string]>
  releaseSession(...args: string[]): Promise<number>
}

export interface TakeoverNotice { v: 1, t: 'takeover', c: string, b: string, e: number }
export interface ReleasedNotice { v: 1, t: 'released', c: string, e: number }

export interface Claim {
  epoch: number
  /** The connection this one replaces, if it may still be flushing its session. */
  previous: { brokerId: string, epoch: number, released: boolean, persistent: boolean } | null
}

/**
 * Who holds each client id, cluster-wide. A connect claims the client id with
 * a fresh epoch; the previous holder, told by a takeover notice, closes its
 * connection and releases the id once its writes are in Redis. The new holder
 * waits for that release (bounded) before it reads the session, so a client
 * that reconnects right after acknowledging a burst is not sent it again.
 */
export class SessionRegistry {
  private readonly r: Scripted
  private readonly waiters = new Map<string, Array<{ epoch: number, resolve: () => void }>>()

  constructor (private readonly redis: Redis, private readonly keys: Keys, private readonly brokerId: string) {
    this.r = redis as unknown as Scripted
  }

  async claim (clientId: string, persistent: boolean): Promise<Claim> {
    const [epoch, prev] = await this.r.claimSession(this.keys.owners, this.keys.epoch, clientId, this.brokerId, this.keys.controlChannel, persistent ? '1' : '0')
    if (!prev) return { epoch, previous: null }
    const [brokerId, e, state, p] = prev.split('|')
    return { epoch, previous: { brokerId, epoch: Number(e), released: state === 'released', persistent: p === '1' } }
  }

  async release (clientId: string, epoch: number, persistent: boolean): Promise<void> {
    await this.r.releaseSession(this.keys.owners, clientId, this.brokerId, String(epoch), this.keys.controlChannel, persistent ? 'persistent' : '')
  }

  /** Resolves true when the holder of `epoch` released the id, false after `ms`. */
  waitReleased (clientId: string, epoch: number, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const list = this.waiters.get(clientId) ?? []
      const entry = { epoch, resolve: () => { clearTimeout(timer); resolve(true) } }
      const timer = setTimeout(() => {
        const l = this.waiters.get(clientId)
        if (l) { const i = l.indexOf(entry); if (i >= 0) l.splice(i, 1); if (l.length === 0) this.waiters.delete(clientId) }
        resolve(false)
      }, ms)
      list.push(entry)
      this.waiters.set(clientId, list)
    })
  }

  onReleased (n: ReleasedNotice): void {
    const list = this.waiters.get(n.c)
    if (!list) return
    const keep = list.filter((w) => { if (w.epoch <= n.e) { w.resolve(); return false } return true })
    if (keep.length === 0) this.waiters.delete(n.c); else this.waiters.set(n.c, keep)
  }
}
