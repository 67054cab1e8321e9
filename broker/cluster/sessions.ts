import type { Redis } from 'ioredis'
import type { Keys } from './keys.ts'
import { ThingmeshError } from '../errors.ts'
import { ClaimBatch } from './claim-batch.ts'

interface Scripted {
  claimSessions(...args: Array<string | Buffer>): Promise<Array<number | string>>
  releaseSession(...args: string[]): Promise<number>
}

export interface TakeoverNotice { v: 1, t: 'takeover', c: string, b: string, e: number }
export interface ReleasedNotice { v: 1, t: 'released', c: string, e: number }

export interface Claim {
  epoch: number
  /** The connection this one replaces, if it may still be flushing its session. */
  previous: { brokerId: string, epoch: number, released: boolean, persistent: boolean } | null
  /**
   * The subscription index version of the stored subscriptions a clean claim
   * discarded, or 0 if it discarded none (and always for a persistent one).
   */
  subsVersion: number
}

/** A script's refusal of a write by a broker in `gone` (the Lua error "BROKER_FENCED ..."). */
export function isFencedReply (err: unknown): boolean {
  return /^BROKER_FENCED /.test((err as Error | undefined)?.message ?? '')
}

/**
 * Who holds each client id, cluster-wide. A connect claims the client id with
 * a fresh epoch; the previous holder, told by a takeover notice, closes its
 * connection and releases the id once its writes are in Redis. The new holder
 * waits for that release (bounded) before it reads the session, so a client
 * that reconnects right after acknowledging a burst is not sent it again.
 */
/** How long a release notice is remembered: it may arrive before its waiter registers. */
const RELEASE_MEMORY_MS = 10_000
/** While waiting for a release, how often the holder's heartbeat is looked at. */
const HOLDER_CHECK_MS = 250

export class SessionRegistry {
  private readonly r: Scripted
  private readonly waiters = new Map<string, Array<{ epoch: number, resolve: () => void }>>()
  /**
   * Highest released epoch per client id, recently. The claim reply and the
   * previous holder's release notice travel on different Redis connections,
   * and the new holder registers its waiter only after a further round trip,
   * so the notice can come first; forgotten, it cost a full takeoverWaitMs.
   */
  private readonly released = new Map<string, { epoch: number, at: number }>()
  /**
   * The claims of an event-loop turn, in one script call: on a node's
   * connection one it sends directly (connectRedis `direct`), as ioredis'
   * auto-pipelining would add a pipeline, a promise and closures per call.
   */
  private readonly claims: ClaimBatch

  constructor (private readonly redis: Redis, private readonly keys: Keys, private readonly brokerId: string) {
    this.r = redis as unknown as Scripted
    const k = keys
    this.claims = new ClaimBatch((pairs) => this.r.claimSessions(k.owners, k.epoch, k.gone, k.wills, k.sessions, k.subClients, k.subVersion,
      k.controlChannel, k.prefix, brokerId, ...pairs))
  }

  /**
   * Claims the client id and does the rest of the CONNECT's session work in
   * the same script (lua/claimSessions-7.lua, one call for the claims of an
   * event-loop turn): the client's earlier will is
   * deleted, its session is no longer one to expire, and a clean claim
   * discards the previous session's subscriptions, queue and inbound QoS 2
   * state [MQTT-3.1.2-6]. The persistence is told (RedisPersistence
   * claimedAtConnect), so aedes' own calls for these are answered without Redis.
   *
   * A claim by an incarnation the cluster declared dead is refused by the
   * script, writing nothing: one replayed from the cut, or made before the
   * fenced heartbeat's reply. It rejects with BROKER_FENCED; the CONNECT hook
   * answers any failed claim with CONNACK 3, server unavailable.
   */
  async claim (clientId: string, persistent: boolean): Promise<Claim> {
    let epoch: number, prev: string, subsVersion: number
    try {
      [epoch, prev, subsVersion] = await this.claims.claim(clientId, persistent)
    } catch (err) {
      if (!isFencedReply(err)) throw err
      throw new ThingmeshError('BROKER_FENCED', `this node (${this.brokerId}) was declared dead by the cluster; session claim refused`, { brokerId: this.brokerId })
    }
    if (!prev) return { epoch, previous: null, subsVersion }
    const [brokerId, e, state, p] = prev.split('|')
    return { epoch, previous: { brokerId, epoch: Number(e), released: state === 'released', persistent: p === '1' }, subsVersion }
  }

  async release (clientId: string, epoch: number, persistent: boolean): Promise<void> {
    await this.r.releaseSession(this.keys.owners, clientId, this.brokerId, String(epoch), this.keys.controlChannel, persistent ? 'persistent' : '')
  }

  /** The current holder (broker id and epoch) of each client id, or null. */
  async holders (clientIds: string[]): Promise<Array<{ brokerId: string, epoch: number } | null>> {
    const out: Array<{ brokerId: string, epoch: number } | null> = []
    for (let i = 0; i < clientIds.length; i += 1000) {
      const records = await this.redis.hmget(this.keys.owners, ...clientIds.slice(i, i + 1000))
      for (const r of records) {
        if (!r) { out.push(null); continue }
        const [brokerId, e] = r.split('|')
        out.push({ brokerId, epoch: Number(e) })
      }
    }
    return out
  }

  /**
   * Resolves 'released' when the holder of `epoch` released the id, 'timeout'
   * after `ms`. Given the holder, also 'holder-dead' as soon as its last
   * heartbeat is older than `staleAfterMs`: a node killed or cut off from
   * Redis never releases, and waiting for it only delays the reconnect
   * (R1: a persistent client coming back after its node was SIGKILLed).
   */
  waitReleased (clientId: string, epoch: number, ms: number, holder?: { brokerId: string, staleAfterMs: number }): Promise<'released' | 'timeout' | 'holder-dead'> {
    const known = this.released.get(clientId)
    if (known && known.epoch >= epoch) return Promise.resolve('released')
    return new Promise((resolve) => {
      let done = false
      let check: NodeJS.Timeout | null = null
      const finish = (how: 'released' | 'timeout' | 'holder-dead'): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        if (check) clearTimeout(check)
        const l = this.waiters.get(clientId)
        if (l) { const i = l.indexOf(entry); if (i >= 0) l.splice(i, 1); if (l.length === 0) this.waiters.delete(clientId) }
        resolve(how)
      }
      const entry = { epoch, resolve: () => finish('released') }
      const timer = setTimeout(() => finish('timeout'), ms)
      const list = this.waiters.get(clientId) ?? []
      list.push(entry)
      this.waiters.set(clientId, list)
      if (holder) {
        const look = (): void => {
          this.beatAgeMs(holder.brokerId).then((age) => {
            if (done) return
            if (age === null || age > holder.staleAfterMs) finish('holder-dead')
            else check = setTimeout(look, HOLDER_CHECK_MS)
          }, () => { if (!done) check = setTimeout(look, HOLDER_CHECK_MS) })
        }
        look()
      }
    })
  }

  /** Milliseconds since the broker's last heartbeat, by Redis' clock; null if it is no member. */
  private async beatAgeMs (brokerId: string): Promise<number | null> {
    const res = await this.redis.pipeline().zscore(this.keys.alive, brokerId).time().exec()
    if (!res || res[0][0] || res[1][0]) throw new Error('heartbeat lookup failed')
    const score = res[0][1] as string | null
    if (score === null) return null
    const [sec, usec] = res[1][1] as [string, string]
    return Number(sec) * 1000 + Math.floor(Number(usec) / 1000) - Number(score)
  }

  onReleased (n: ReleasedNotice): void {
    const now = Date.now()
    const prev = this.released.get(n.c)
    this.released.set(n.c, { epoch: Math.max(n.e, prev?.epoch ?? 0), at: now })
    if (this.released.size > 1000) {
      for (const [id, r] of this.released) if (now - r.at > RELEASE_MEMORY_MS) this.released.delete(id)
    }
    const list = this.waiters.get(n.c)
    if (!list) return
    const keep = list.filter((w) => { if (w.epoch <= n.e) { w.resolve(); return false } return true })
    if (keep.length === 0) this.waiters.delete(n.c); else this.waiters.set(n.c, keep)
  }
}
