/**
 * Chooses, per batch, how the bus reaches a target node, and keeps the
 * batches to one target in the order the bus flushed them.
 *
 * QoS 0-only batches take the direct link when it is up. Batches with a
 * QoS 1 frame (durability 1) take it too, as ACKED_BATCHes: their
 * publishers' waits complete only when the target acknowledges it delivered
 * them. If the link drops, or an ack is later than ackTimeoutMs (the link is
 * then cut), the unacknowledged ones go again through Redis and its replay
 * log (cluster/bus-log.ts), before anything newer: QoS 1 allows the
 * duplicates this makes. Batches with a QoS 2 frame (durability 2) always
 * take Redis: a resend could deliver them twice, and the replay log delivers
 * each exactly once across pub/sub cuts. While acked links are off (the
 * node asks for Redis replicas' confirmation, --redis-wait-replicas, or its
 * Redis is away) QoS 1 takes Redis as well. Anything takes Redis while the
 * link is down.
 *
 * Two transports may reorder: a link batch written after a Redis batch can
 * arrive first (Redis is one hop more), and a Redis batch after link
 * batches could be read first by a busy receiver. So a batch changes
 * transport only once the other transport is known to be empty:
 *
 * - Redis -> link: a marker (codec.ts, encodeMarker) is published on the
 *   target's bus channel after the Redis batches; the target acknowledges
 *   it over the link once it has handed everything before it to its bus.
 *   Link batches wait for that ack. An ack not in time (Redis slow or away,
 *   the target's pub/sub link cut) sends the waiting batches through Redis
 *   instead, in order, and a later batch tries again.
 * - link -> Redis: a SYNC on the link, answered once the target handed every
 *   link batch to its bus. Redis batches wait for it (one link round trip).
 *   A link that goes down needs no sync: what it carried has arrived or is
 *   lost (QoS 0, at most once; QoS 1 is sent again), and none of it can
 *   arrive later.
 *
 * A stream of one kind never waits; a mixed stream to one target waits once
 * per change of transport.
 */

/** What a batch's publishers were promised: 0 nothing (QoS 0 only), 1 at least once, 2 exactly once. */
export type Durability = 0 | 1 | 2

export interface LinkPort {
  /** The authenticated link to `target`, or null while it is down. */
  linkTo(target: string): Link | null
  /** Plain PUBLISH (durable = false) or the replay-log script (durable = true). */
  redisPublish(target: string, batch: Buffer, durable: boolean): Promise<unknown>
  /** Publishes a transport marker on the target's bus channel, after every Redis batch sent before. */
  redisMarker(target: string, token: number): Promise<unknown>
}

export interface Link {
  sendBatch(b: Buffer): void
  /** Sends a batch the target acknowledges once delivered; returns its number on this connection. */
  sendAcked(b: Buffer): number
  sync(token: number): void
  cut(reason: string): void
}

export interface RouterStats {
  linkBatches: number
  linkFrames: number
  redisBatches: number
  redisFrames: number
  /** Marker acks that did not come in time (batches went through Redis instead). */
  markerTimeouts: number
  /** Times batches waited for the other transport to empty. */
  switches: number
  /** QoS 1 link batches the target acknowledged. */
  linkAcked: number
  /** QoS 1 link batches sent again through Redis (link down or ack late). */
  resent: number
  /** Links cut because an ack was later than ackTimeoutMs. */
  ackTimeouts: number
}

interface Item {
  batch: Buffer
  durability: Durability
  frames: number
  /** Held past a marker timeout, or sent again after a link loss: goes through Redis whatever the link does. */
  forceRedis: boolean
  /** For a QoS 1 batch on the link: its number on the connection, and when it was written. */
  seq: number
  sentAt: number
  resolve(v?: unknown): void
  reject(e: Error): void
}

interface Target {
  id: string
  held: Item[]
  /** Link batches written since the last SYNCED (or since the link came up). */
  linkTail: boolean
  /** Redis batches sent since the last acknowledged marker. */
  redisTail: boolean
  sync: { kind: 'link' | 'redis', token: number, timer: NodeJS.Timeout } | null
  /** QoS 1 batches on the link not acknowledged yet, oldest first. */
  unacked: Item[]
  ackTimer: NodeJS.Timeout | null
}

export class TransportRouter {
  readonly stats: RouterStats = { linkBatches: 0, linkFrames: 0, redisBatches: 0, redisFrames: 0, markerTimeouts: 0, switches: 0, linkAcked: 0, resent: 0, ackTimeouts: 0 }
  private readonly targets = new Map<string, Target>()
  private nextToken = 1

  constructor (
    private readonly port: LinkPort,
    private readonly maxLinkBatch: number,
    /** How long a marker may take through Redis before the waiting batches go through Redis. */
    private readonly markerTimeoutMs: number,
    /** How long a SYNC may go unanswered before the link is cut. */
    private readonly syncTimeoutMs: number,
    /** How long a QoS 1 link batch may go unacknowledged before the link is cut (and it is sent through Redis). */
    private readonly ackTimeoutMs: number,
    /** QoS 1 batches may take the link (acknowledged) now; false keeps them on Redis. Asked per batch. */
    private readonly ackedLink: () => boolean,
  ) {}

  publish (target: string, batch: Buffer, durability: Durability, frames: number): Promise<unknown> {
    const t = this.target(target)
    // Fast path: nothing waiting and the link usable as is.
    if (t.held.length === 0 && t.sync === null && !t.redisTail && this.linkable(batch, durability)) {
      const link = this.port.linkTo(target)
      if (link) {
        if (durability === 0) {
          this.viaLink(t, link, batch, frames)
          return RESOLVED
        }
        return new Promise((resolve, reject) => {
          this.viaLinkAcked(t, link, { batch, durability, frames, forceRedis: false, seq: 0, sentAt: 0, resolve, reject })
        })
      }
    }
    return new Promise((resolve, reject) => {
      t.held.push({ batch, durability, frames, forceRedis: false, seq: 0, sentAt: 0, resolve, reject })
      this.drain(t)
    })
  }

  /** The target delivered the QoS 1 link batches numbered up to `upTo` on the current connection. */
  acked (target: string, upTo: number): void {
    const t = this.targets.get(target)
    if (!t) return
    let n = 0
    while (n < t.unacked.length && t.unacked[n].seq <= upTo) n++
    if (n === 0) return
    const done = t.unacked.splice(0, n)
    this.stats.linkAcked += n
    for (const it of done) it.resolve()
  }

  /** The link to `target` went down: it carries nothing any more. */
  linkDown (target: string): void {
    const t = this.targets.get(target)
    if (!t) return
    t.linkTail = false
    // A marker's ack would come back over the link: what waits for it goes through Redis now.
    this.endSync(t)
    this.resendUnacked(t)
    this.drain(t)
  }

  /** The link to `target` came up: waiting batches may now use it. */
  linkUp (target: string): void {
    const t = this.targets.get(target)
    if (t) this.drain(t)
  }

  /** The target answered our SYNC: every link batch before it reached its bus. */
  synced (target: string, token: number): void { this.syncDone(target, 'link', token) }

  /** The target saw our marker: every Redis batch before it reached its bus. */
  markerAcked (target: string, token: number): void { this.syncDone(target, 'redis', token) }

  /** A node left the cluster: nothing more is sent to it; what waits goes through Redis (which drops it). */
  forget (target: string): void {
    const t = this.targets.get(target)
    if (!t) return
    if (t.sync) clearTimeout(t.sync.timer)
    t.sync = null
    this.resendUnacked(t)
    this.targets.delete(target)
    for (const it of t.held) this.viaRedis(t, it)
    t.held = []
  }

  close (): void {
    for (const id of [...this.targets.keys()]) this.forget(id)
  }

  private target (id: string): Target {
    let t = this.targets.get(id)
    if (!t) { t = { id, held: [], linkTail: false, redisTail: false, sync: null, unacked: [], ackTimer: null }; this.targets.set(id, t) }
    return t
  }

  private linkable (batch: Buffer, durability: Durability): boolean {
    return (durability === 0 || (durability === 1 && this.ackedLink())) && batch.length <= this.maxLinkBatch
  }

  private drain (t: Target): void {
    // A link cut a moment ago reports itself down on its socket's close; what it did not acknowledge goes first.
    if (t.unacked.length > 0 && this.port.linkTo(t.id) === null) this.resendUnacked(t)
    while (t.held.length > 0 && t.sync === null) {
      const it = t.held[0]
      const link = it.forceRedis || !this.linkable(it.batch, it.durability) ? null : this.port.linkTo(t.id)
      if (link && t.redisTail) { this.startMarker(t); return }
      if (!link && t.linkTail) {
        const current = this.port.linkTo(t.id)
        if (current) { this.startSync(t, current); return }
        t.linkTail = false
      }
      t.held.shift()
      if (!link) this.viaRedis(t, it)
      else if (it.durability === 0) { this.viaLink(t, link, it.batch, it.frames); it.resolve() } else this.viaLinkAcked(t, link, it)
    }
  }

  /** A QoS 1 batch on the link: it completes when the target acknowledges it (acked()). */
  private viaLinkAcked (t: Target, link: Link, it: Item): void {
    it.seq = link.sendAcked(it.batch)
    it.sentAt = Date.now()
    t.unacked.push(it)
    t.linkTail = true
    this.stats.linkBatches++
    this.stats.linkFrames += it.frames
    if (t.ackTimer === null) t.ackTimer = setTimeout(() => this.checkAcks(t), this.ackTimeoutMs)
  }

  /** One timer per target, set for the oldest unacknowledged batch: an ack that late cuts the link. */
  private checkAcks (t: Target): void {
    t.ackTimer = null
    if (t.unacked.length === 0) return
    const late = Date.now() - t.unacked[0].sentAt
    if (late < this.ackTimeoutMs) { t.ackTimer = setTimeout(() => this.checkAcks(t), this.ackTimeoutMs - late); return }
    this.stats.ackTimeouts++
    this.port.linkTo(t.id)?.cut('ack_timeout')
    // The cut link reports itself down once its socket closed; nothing more is sent over it meanwhile.
    this.linkDown(t.id)
  }

  /**
   * The link is gone with QoS 1 batches it did not acknowledge: they go again
   * through Redis, ahead of whatever waits (they were sent before it). The
   * target may have delivered some of them: QoS 1 allows the duplicates.
   */
  private resendUnacked (t: Target): void {
    if (t.ackTimer) clearTimeout(t.ackTimer)
    t.ackTimer = null
    if (t.unacked.length === 0) return
    for (const it of t.unacked) it.forceRedis = true
    this.stats.resent += t.unacked.length
    t.held = t.unacked.concat(t.held)
    t.unacked = []
  }

  private viaLink (t: Target, link: Link, batch: Buffer, frames: number): void {
    link.sendBatch(batch)
    t.linkTail = true
    this.stats.linkBatches++
    this.stats.linkFrames += frames
  }

  private viaRedis (t: Target, it: Item): void {
    t.redisTail = true
    this.stats.redisBatches++
    this.stats.redisFrames += it.frames
    this.port.redisPublish(t.id, it.batch, it.durability > 0).then(it.resolve, it.reject)
  }

  private startMarker (t: Target): void {
    const token = this.token()
    this.stats.switches++
    const timer = setTimeout(() => this.markerFailed(t, token), this.markerTimeoutMs)
    t.sync = { kind: 'redis', token, timer }
    this.port.redisMarker(t.id, token).catch(() => this.markerFailed(t, token))
  }

  /** The marker is lost or late: what waits for it goes through Redis, behind the batches it was to follow. */
  private markerFailed (t: Target, token: number): void {
    if (t.sync?.kind !== 'redis' || t.sync.token !== token) return
    this.stats.markerTimeouts++
    this.endSync(t)
    for (const it of t.held) it.forceRedis = true
    this.drain(t)
  }

  private startSync (t: Target, link: Link): void {
    const token = this.token()
    this.stats.switches++
    const timer = setTimeout(() => {
      // A peer that does not answer in time is not a usable link: cut it (linkDown follows).
      if (t.sync?.token === token) link.cut('sync_timeout')
    }, this.syncTimeoutMs)
    t.sync = { kind: 'link', token, timer }
    link.sync(token)
  }

  private syncDone (target: string, kind: 'link' | 'redis', token: number): void {
    const t = this.targets.get(target)
    if (!t || t.sync?.kind !== kind || t.sync.token !== token) return
    if (kind === 'link') t.linkTail = false
    else t.redisTail = false
    this.endSync(t)
    this.drain(t)
  }

  private endSync (t: Target): void {
    if (t.sync) clearTimeout(t.sync.timer)
    t.sync = null
  }

  private token (): number {
    this.nextToken = (this.nextToken % 0xffffffff) + 1
    return this.nextToken
  }
}

const RESOLVED: Promise<unknown> = Promise.resolve()
