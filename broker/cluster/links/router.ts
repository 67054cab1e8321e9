/**
 * Chooses, per batch, how the bus reaches a target node, and keeps the
 * batches to one target in the order the bus flushed them.
 *
 * Non-durable batches (QoS 0 only) take the direct link when it is up;
 * durable ones (any QoS 1/2 frame) always take Redis, whose replay log
 * (cluster/bus-log.ts) survives a pub/sub cut; anything takes Redis when the
 * link is down. Two transports may reorder: a link batch written after a
 * Redis batch can arrive first (Redis is one hop more), and a Redis batch
 * after link batches could be read first by a busy receiver. So a batch
 * changes transport only once the other transport is known to be empty:
 *
 * - Redis -> link: a marker (codec.ts, encodeMarker) is published on the
 *   target's bus channel after the Redis batches; the target acknowledges
 *   it over the link once it has handed everything before it to its bus.
 *   Link batches wait for that ack. An ack not in time (Redis slow or away,
 *   the target's pub/sub link cut) sends the waiting batches through Redis
 *   instead, in order, and a later batch tries again.
 * - link -> Redis: a SYNC on the link, answered once the target handed every
 *   link batch to its bus. Durable batches wait for it (one link round trip).
 *   A link that goes down needs no sync: what it carried has arrived or is
 *   lost (QoS 0, at most once), and none of it can arrive later.
 *
 * A stream of one kind never waits; a mixed QoS 0 / QoS 1 stream to one
 * target waits once per change of kind.
 */

export interface LinkPort {
  /** The authenticated link to `target`, or null while it is down. */
  linkTo(target: string): { sendBatch(b: Buffer): void, sync(token: number): void, cut(reason: string): void } | null
  /** Plain PUBLISH (durable = false) or the replay-log script (durable = true). */
  redisPublish(target: string, batch: Buffer, durable: boolean): Promise<unknown>
  /** Publishes a transport marker on the target's bus channel, after every Redis batch sent before. */
  redisMarker(target: string, token: number): Promise<unknown>
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
}

interface Item {
  batch: Buffer
  durable: boolean
  frames: number
  /** Held past a marker timeout: goes through Redis whatever the link does. */
  forceRedis: boolean
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
}

export class TransportRouter {
  readonly stats: RouterStats = { linkBatches: 0, linkFrames: 0, redisBatches: 0, redisFrames: 0, markerTimeouts: 0, switches: 0 }
  private readonly targets = new Map<string, Target>()
  private nextToken = 1

  constructor (
    private readonly port: LinkPort,
    private readonly maxLinkBatch: number,
    /** How long a marker may take through Redis before the waiting batches go through Redis. */
    private readonly markerTimeoutMs: number,
    /** How long a SYNC may go unanswered before the link is cut. */
    private readonly syncTimeoutMs: number,
  ) {}

  publish (target: string, batch: Buffer, durable: boolean, frames: number): Promise<unknown> {
    const t = this.target(target)
    // Fast path: nothing waiting and the link usable as is.
    if (t.held.length === 0 && t.sync === null && !durable && !t.redisTail && batch.length <= this.maxLinkBatch) {
      const link = this.port.linkTo(target)
      if (link) {
        this.viaLink(t, link, batch, frames)
        return RESOLVED
      }
    }
    return new Promise((resolve, reject) => {
      t.held.push({ batch, durable, frames, forceRedis: false, resolve, reject })
      this.drain(t)
    })
  }

  /** The link to `target` went down: it carries nothing any more. */
  linkDown (target: string): void {
    const t = this.targets.get(target)
    if (!t) return
    t.linkTail = false
    // A marker's ack would come back over the link: what waits for it goes through Redis now.
    this.endSync(t)
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
    this.targets.delete(target)
    for (const it of t.held) this.viaRedis(t, it)
    t.held = []
  }

  close (): void {
    for (const id of [...this.targets.keys()]) this.forget(id)
  }

  private target (id: string): Target {
    let t = this.targets.get(id)
    if (!t) { t = { id, held: [], linkTail: false, redisTail: false, sync: null }; this.targets.set(id, t) }
    return t
  }

  private drain (t: Target): void {
    while (t.held.length > 0 && t.sync === null) {
      const it = t.held[0]
      const link = it.durable || it.forceRedis || it.batch.length > this.maxLinkBatch ? null : this.port.linkTo(t.id)
      if (link && t.redisTail) { this.startMarker(t); return }
      if (!link && t.linkTail) {
        const current = this.port.linkTo(t.id)
        if (current) { this.startSync(t, current); return }
        t.linkTail = false
      }
      t.held.shift()
      if (link) { this.viaLink(t, link, it.batch, it.frames); it.resolve() } else this.viaRedis(t, it)
    }
  }

  private viaLink (t: Target, link: NonNullable<ReturnType<LinkPort['linkTo']>>, batch: Buffer, frames: number): void {
    link.sendBatch(batch)
    t.linkTail = true
    this.stats.linkBatches++
    this.stats.linkFrames += frames
  }

  private viaRedis (t: Target, it: Item): void {
    t.redisTail = true
    this.stats.redisBatches++
    this.stats.redisFrames += it.frames
    this.port.redisPublish(t.id, it.batch, it.durable).then(it.resolve, it.reject)
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

  private startSync (t: Target, link: NonNullable<ReturnType<LinkPort['linkTo']>>): void {
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
