import { createRequire } from 'node:module'
import { decodeBatch, encodeBatch, encodeFrame, type BusPacket } from './codec.ts'
import type { InterestTable } from './interest.ts'

const require = createRequire(import.meta.url)
// mqemitter is CommonJS without types; this is the surface aedes relies on.
const mqemitter = require('mqemitter') as (opts: object) => LocalEmitter

type Listener = (packet: any, done: () => void) => void
interface LocalEmitter {
  on(topic: string, fn: Listener, done?: () => void): unknown
  removeListener(topic: string, fn: Listener, done?: () => void): unknown
  emit(packet: any, done?: (err?: Error) => void): unknown
  close(done: () => void): void
}

export interface BusStats {
  sent: number
  batches: number
  received: number
  dropped: number
  malformed: number
}

/** What the bus needs from Redis, injected so the bus stays testable. */
export interface BusIo {
  /**
   * Send a batch of `frames` publishes to a node: over the direct link
   * (cluster/links/) or as a PUBLISH on its bus channel. `durability` is the
   * highest QoS of a publish waiting for it (0: QoS 0 only): such a batch
   * resolves once the node acknowledged delivering it over the link, or once
   * it is in the node's replay log (cluster/bus-log.ts).
   */
  publish(brokerId: string, batch: Buffer, durability: 0 | 1 | 2, frames: number): Promise<unknown>
  /** Record and announce a change of this node's interest set. */
  announce(op: 'add' | 'rm', filters: string[]): Promise<unknown>
  /**
   * Optional durability barrier: resolves once enough replicas hold every
   * write made so far on the command connection (Redis WAIT), rejects if not
   * in time. One call covers every QoS>0 publish of the tick.
   */
  replicated?: () => Promise<void>
}

/** Flush a target's batch early past this many bytes, so one tick cannot build a huge message. */
const MAX_BATCH_BYTES = 512 * 1024

interface Waiter { remaining: number, failed: Error | undefined, qos: number, cb: (err?: Error) => void }
interface Pending { frames: Buffer[], bytes: number, waiters: Waiter[] }

/**
 * The message bus aedes sees as its `mq` (the mqemitter interface).
 *
 * Local-first: a publish is delivered to this node's subscribers in-process.
 * It is forwarded only to the nodes whose clients subscribed to a matching
 * filter (the interest table), in one batched PUBLISH per target node per
 * event-loop tick. QoS0 completes after local delivery; QoS1/2 complete when
 * Redis accepted every forward, so the PUBACK sent after the publish chain
 * (mqtt/wire-patches.ts) means the message left this node.
 *
 * Broker-internal `$SYS/` traffic stays local: membership and takeover have
 * their own protocol in cluster/, which clients cannot forge.
 */
export class ClusterBus {
  readonly stats: BusStats = { sent: 0, batches: 0, received: 0, dropped: 0, malformed: 0 }
  private readonly local: LocalEmitter
  private readonly refs = new Map<string, number>()
  private readonly pending = new Map<string, Pending>()
  private flushScheduled = false
  private closed = false
  /** Local deliveries waiting for a slot (FIFO; head index instead of Array#shift). */
  private waiting: Array<{ packet: BusPacket, cb: (err?: Error) => void } | undefined> = []
  private waitingHead = 0
  private inFlight = 0
  private pumping = false

  constructor (
    private readonly origin: string,
    private readonly io: BusIo | null,
    private readonly table: InterestTable | null,
    private readonly concurrency: number,
    private readonly onError: (what: string, err: Error) => void = () => {},
  ) {
    this.local = mqemitter({ concurrency: 0, matchEmptyLevels: true })
    cacheMatches(this.local)
  }

  on (topic: string, fn: Listener, done?: (err?: Error) => void): this {
    this.local.on(topic, fn)
    const n = (this.refs.get(topic) ?? 0) + 1
    this.refs.set(topic, n)
    if (n === 1 && this.io && routable(topic)) {
      // SUBACK waits for this: once the client hears it, the cluster routes to us.
      this.io.announce('add', [topic]).then(() => done?.(), (err: Error) => {
        this.onError('interest.add', err)
        done?.(err)
      })
    } else if (done) setImmediate(done)
    return this
  }

  removeListener (topic: string, fn: Listener, done?: () => void): this {
    this.local.removeListener(topic, fn, done)
    const n = (this.refs.get(topic) ?? 0) - 1
    if (n > 0) { this.refs.set(topic, n); return this }
    this.refs.delete(topic)
    if (this.io && routable(topic)) {
      // Best effort: a stale filter only costs a forward the other side drops.
      this.io.announce('rm', [topic]).catch((err: Error) => this.onError('interest.rm', err))
    }
    return this
  }

  /** Re-announces every local filter (after Redis lost or may have lost our set). */
  async reannounce (): Promise<void> {
    if (!this.io) return
    const filters = [...this.refs.keys()].filter(routable)
    for (let i = 0; i < filters.length; i += 500) await this.io.announce('add', filters.slice(i, i + 500))
  }

  emit (packet: BusPacket & { cmd?: string }, done?: (err?: Error) => void): void {
    const cb = done ?? noop
    if (this.closed) { cb(new Error('bus closed')); return }
    const targets = this.io && this.table && !packet.topic.startsWith('$SYS/') ? this.table.targets(packet.topic) : []
    if (targets.length === 0) { this.emitLocal(packet, packet.qos > 0 ? this.durable(cb) : cb); return }
    const frame = encodeFrame('', packet)
    if (packet.qos === 0) {
      this.emitLocal(packet, cb)
      for (const t of targets) this.queue(t, frame, null)
      return
    }
    const waiter: Waiter = { remaining: 1 + targets.length, failed: undefined, qos: packet.qos, cb: this.durable(cb) }
    this.emitLocal(packet, (err?: Error) => settle(waiter, err))
    for (const t of targets) this.queue(t, frame, waiter)
  }

  private replicaWaiters: Array<(err?: Error) => void> = []
  private replicaScheduled = false
  private replicaInFlight = false

  /**
   * Wraps a QoS>0 completion with the replication barrier, when configured.
   * One WAIT at a time: WAIT blocks the command connection until it returns,
   * and while replicas resync after a failover each one runs to its timeout,
   * so queued WAITs would hold back every command behind them (heartbeats
   * included) for their sum. Completions arriving meanwhile share the next one.
   */
  private durable (cb: (err?: Error) => void): (err?: Error) => void {
    if (!this.io?.replicated) return cb
    return (err?: Error) => {
      if (err) { cb(err); return }
      this.replicaWaiters.push(cb)
      this.scheduleReplicaWait()
    }
  }

  private scheduleReplicaWait (): void {
    if (this.replicaScheduled || this.replicaInFlight) return
    this.replicaScheduled = true
    setImmediate(() => {
      this.replicaScheduled = false
      const waiters = this.replicaWaiters
      this.replicaWaiters = []
      this.replicaInFlight = true
      const done = (e?: Error): void => {
        this.replicaInFlight = false
        for (const w of waiters) w(e)
        if (this.replicaWaiters.length > 0) this.scheduleReplicaWait()
      }
      this.io!.replicated!().then(() => done(), done)
    })
  }

  private queue (target: string, frame: Buffer, waiter: Waiter | null): void {
    let p = this.pending.get(target)
    if (!p) { p = { frames: [], bytes: 0, waiters: [] }; this.pending.set(target, p) }
    p.frames.push(frame)
    p.bytes += frame.length
    if (waiter) p.waiters.push(waiter)
    if (p.bytes >= MAX_BATCH_BYTES) { this.pending.delete(target); this.send(target, p); return }
    if (!this.flushScheduled) { this.flushScheduled = true; setImmediate(() => this.flush()) }
  }

  private flush (): void {
    this.flushScheduled = false
    const batches = [...this.pending]
    this.pending.clear()
    for (const [target, p] of batches) this.send(target, p)
  }

  private send (target: string, p: Pending): void {
    this.stats.batches++
    let durability: 0 | 1 | 2 = 0
    for (const w of p.waiters) if (w.qos > durability) durability = w.qos as 1 | 2
    this.io!.publish(target, encodeBatch(this.origin, p.frames), durability, p.frames.length).then(() => {
      this.stats.sent += p.frames.length
      for (const w of p.waiters) settle(w)
    }, (err: Error) => {
      this.stats.dropped += p.frames.length
      // QoS0 has no acknowledgement to withhold; QoS1/2 publishers get no PUBACK.
      for (const w of p.waiters) settle(w, err)
    })
  }

  /**
   * Entry point for batches arriving from other nodes (bus channel or direct
   * link). Returns the number of publishes delivered, -1 for a malformed batch.
   * `delivered` (a link batch the sender waits for) is called once every
   * publish in it completed local delivery: aedes' chain per subscriber,
   * including a persistent subscriber's packet id written to Redis
   * (outgoingUpdate) before the write to its socket. A delivery that fails
   * counts as done, as on the Redis path: the batch reached this node.
   */
  receive (message: Buffer, delivered?: () => void): number {
    const batch = decodeBatch(message)
    if (batch === null) { this.stats.malformed++; return -1 }
    const n = batch.origin === this.origin ? 0 : batch.packets.length
    let remaining = n
    const one = delivered ? () => { if (--remaining === 0) delivered() } : noop
    for (let i = 0; i < n; i++) {
      const p = batch.packets[i] as BusPacket & { cmd: string }
      this.stats.received++
      p.cmd = 'publish'
      this.emitLocal(p, one)
    }
    if (n === 0) delivered?.()
    return n
  }

  /**
   * Local delivery, at most `concurrency` packets at once, in order. The
   * local mqemitter gets unlimited concurrency and never queues: its own
   * queue pays an Array#shift per completed delivery, which was a third of a
   * subscriber node's CPU under fan-in (profile in issue 8).
   */
  private emitLocal (packet: BusPacket, cb: (err?: Error) => void): void {
    if (this.inFlight < this.concurrency && this.waitingHead === this.waiting.length) {
      this.inFlight++
      this.local.emit(packet, (err?: Error) => { this.inFlight--; cb(err); this.pump() })
      return
    }
    this.waiting.push({ packet, cb })
    this.pump()
  }

  private pump (): void {
    if (this.pumping) return
    this.pumping = true
    while (this.inFlight < this.concurrency && this.waitingHead < this.waiting.length) {
      const w = this.waiting[this.waitingHead]!
      this.waiting[this.waitingHead++] = undefined
      this.inFlight++
      this.local.emit(w.packet, (err?: Error) => { this.inFlight--; w.cb(err); this.pump() })
    }
    if (this.waitingHead === this.waiting.length) { this.waiting = []; this.waitingHead = 0 }
    this.pumping = false
  }

  close (done: () => void): void {
    this.closed = true
    this.local.close(done)
  }
}

interface ListenerMatcher {
  match(topic: string): Listener[]
  add(topic: string, fn: Listener): unknown
  remove(topic: string, fn?: Listener): unknown
}

/** Topics whose local listeners are kept, and listeners in all (one aedes subscription is one listener). */
const MATCH_CACHE_TOPICS = 4096
const MATCH_CACHE_LISTENERS = 65_536

/**
 * mqemitter splits and matches the topic in its Qlobber on every emit; a
 * device publishes on the same few topics, so the answers are kept per
 * topic and dropped on any subscribe or unsubscribe (every change goes
 * through the matcher's add/remove, which this wraps). mqemitter only reads
 * the arrays. Its matcher is internal (`_matcher`, mqemitter 7): another
 * shape is left as it is.
 */
function cacheMatches (emitter: LocalEmitter): void {
  const m = (emitter as unknown as { _matcher?: ListenerMatcher })._matcher
  if (!m || typeof m.match !== 'function' || typeof m.add !== 'function' || typeof m.remove !== 'function') return
  const match = m.match.bind(m)
  const add = m.add.bind(m)
  const remove = m.remove.bind(m)
  let cache = new Map<string, Listener[]>()
  let listeners = 0
  const drop = (): void => { if (cache.size > 0) { cache = new Map(); listeners = 0 } }
  m.add = (topic, fn) => { drop(); return add(topic, fn) }
  m.remove = (topic, fn) => { drop(); return fn === undefined ? remove(topic) : remove(topic, fn) }
  m.match = (topic) => {
    const hit = cache.get(topic)
    if (hit !== undefined) return hit
    const found = match(topic)
    if (cache.size >= MATCH_CACHE_TOPICS || listeners + found.length > MATCH_CACHE_LISTENERS) drop()
    cache.set(topic, found)
    listeners += found.length
    return found
  }
}

function settle (w: Waiter, err?: Error | null): void {
  if (err && !w.failed) w.failed = err
  if (--w.remaining === 0) w.cb(w.failed)
}

/** aedes' own `$SYS/` listeners (heartbeats, new clients) never leave the node. */
function routable (filter: string): boolean {
  return !filter.startsWith('$SYS/')
}

function noop (): void {}
