import { Readable } from 'node:stream'
import { DropReports } from './drop-reports.ts'
import type { ChainableCommander, Redis } from 'ioredis'
import type { Keys } from '../cluster/keys.ts'
import { decodeFrame, encodeFrame, type BusPacket } from '../cluster/codec.ts'
import { defineScripts } from '../cluster/redis.ts'
import { BatchSizer } from './batch-sizer.ts'
import { filterRegExp } from './filter-regexp.ts'
import { RetainedDelivery, type RetainedBroker, type StoredRetained } from '../mqtt/retained-delivery.ts'
import { retainedFromFrame } from './retained-frame.ts'
import { RetainedWrites } from './retained-writes.ts'
import { SubscriptionIndex, type StoredSub, type SubscriptionChange } from './subscription-index.ts'

interface ClientRef { id: string }
interface Sub { topic: string, qos: number, rh?: number, rap?: boolean, nl?: boolean }
type Packet = BusPacket & { cmd?: string, messageId?: number }

/** ioredis commands registered from lua/*.lua (see scripts.ts). */
interface Scripted {
  changeSubscriptions(...args: Array<string | number>): Promise<number>
  snapshotSubscriptions(...args: string[]): Promise<[number, ...Array<string | string[]>]>
  enqueue(numKeys: number, ...args: Array<string | number | Buffer>): Promise<number>
  outgoingUpdate(...args: Array<string | number>): Promise<number>
  outgoingClearBuffer(...args: Array<string | number>): Promise<Buffer | null>
  putWill(...args: Array<string | Buffer>): Promise<number>
  takeWillBuffer(...args: string[]): Promise<Buffer | null>
  expireSessions(...args: Array<string | number>): Promise<string[]>
  storeRetainedMany(...args: Array<string | Buffer>): Promise<number[]>
}

export interface RedisPersistenceOptions {
  redis: Redis
  keys: Keys
  /** Per-client outgoing queue cap (drop-oldest). */
  maxQueuedMessages: number
  /**
   * The subscription authorizer. aedes hands the whole SUBSCRIBE packet to the
   * persistence, including filters it has just denied; only filters this
   * predicate allows are stored.
   */
  mayStore: (clientId: string, sub: Sub) => boolean
  /**
   * True if this connection already received the packet live. A reconnecting
   * client's queue is replayed while new messages arrive live; a message can
   * be in both, and must be sent once.
   */
  deliveredLive?: (client: object, packetKey: string) => boolean
  /** Every message the queue cap dropped (for counting). */
  onDropped?: (clientId: string, count: number) => void
  /** At most once per client per DROP_REPORT_MS: the drops since the last report (for the log). */
  onDropReport?: (clientId: string, dropped: number) => void
  onIndexStale?: () => void
  onReadFailed?: (what: string, err: Error) => void
  /** A write that had to be given up on because its caller cannot take the error (see delWill). */
  onWriteFailed?: (what: string, clientId: string, err: Error) => void
}

/** HSCAN COUNT of the one-off index backfill (topics only). */
const RETAINED_SCAN = 1000
/**
 * A batch of retained messages read at a time holds about this many bytes
 * (batch-sizer.ts): a subscriber's delivery holds two batches (one written,
 * the next read meanwhile). The first read asks for RETAINED_FIRST messages,
 * the sizes being unknown; no read asks for more than RETAINED_MAX.
 */
const RETAINED_BATCH_BYTES = 256 * 1024
const RETAINED_FIRST = 50
const RETAINED_MIN = 1
const RETAINED_MAX = 2000
/** Topics per index page: a few bytes each, so more than the messages of a batch. */
const RETAINED_INDEX_PAGE = 10_000
const STREAM_BATCH = 200
const GLOB_FREE = /[+#]/
const STALE_WAIT_MS = 2000
/** No stored subscription matches; aedes only reads the array (filter makes a new one). */
const NONE: StoredSub[] = Object.freeze([]) as unknown as StoredSub[]
const DROP_REPORT_MS = 10_000

/** What a claim did of the CONNECT's session work, still to be asked for by aedes (bits). */
const CLAIM_DID_SUBS = 1
const CLAIM_DID_WILL = 2
const CLAIM_DID_INCOMING = 4

/** A connection whose claim did (part of) the session work aedes asks for later in its CONNECT. */
interface ClaimedConnect { client: object, subsVersion: number, pending: number }

/**
 * The aedes persistence of a cluster node, in Redis, replacing
 * aedes-persistence-redis (see README "What we replaced"): every multi-key
 * change is one Lua script; the subscription index is versioned and resynced
 * on gaps; queues are never truncated on read; packet keys include the broker
 * incarnation so they are never reused across restarts.
 */
export class RedisPersistence {
  readonly index = new SubscriptionIndex()
  private readonly redis: Redis
  private readonly r: Scripted
  private readonly keys: Keys
  private readonly opts: RedisPersistenceOptions
  private broker: { id: string } | null = null
  /** SUBSCRIBE packets already stored: aedes stores the same array once per filter. */
  private storing = new WeakMap<object, Promise<void>>()
  private resyncing: Promise<void> | null = null
  /** Set by close(): the node stopped or was fenced, and its Redis link is cut for good. */
  private closed = false
  /** Ends the back-off sleep of a running resync early (close()). */
  private wakeResync: (() => void) | null = null
  /** Sends new subscriptions' retained messages in place of aedes (set in setup). */
  private retainedDelivery: RetainedDelivery | null = null
  private readonly dropReports = new DropReports(DROP_REPORT_MS, (clientId, n) => this.opts.onDropReport?.(clientId, n))
  /**
   * Connections whose session claim (cluster/lua/claimSessions-7.lua) did the
   * CONNECT's session work, by client id, until aedes has asked for each part
   * (delWill; for a clean session also cleanSubscriptions and cleanIncoming),
   * which is answered without Redis. Entries leave as the CONNECT goes on or
   * the connection closes: none stays per idle connection.
   */
  private readonly claimedConnects = new Map<string, ClaimedConnect>()

  /** Retained stores, one script call per tick (the engine stores a retained state per update). */
  private readonly retainedWrites: RetainedWrites

  constructor (opts: RedisPersistenceOptions) {
    this.opts = opts
    this.redis = opts.redis
    this.keys = opts.keys
    defineScripts(this.redis, new URL('./lua/', import.meta.url))
    this.r = this.redis as unknown as Scripted
    this.retainedWrites = new RetainedWrites((pairs) => this.r.storeRetainedMany(this.keys.retained, this.keys.retainedIndex, ...pairs))
  }

  async setup (broker: { id: string }): Promise<void> {
    this.broker = broker
    this.retainedDelivery = new RetainedDelivery(broker as unknown as RetainedBroker, (filters) => this.retainedBatches(filters),
      (clientId, err) => this.opts.onReadFailed?.(`retained for ${clientId}`, err))
    await this.resync()
  }

  // ---- subscription index -------------------------------------------------

  /** Control-channel entry point (wired by the node). */
  onSubscriptionChange (change: SubscriptionChange): void {
    if (!this.index.apply(change)) void this.resync()
  }

  /**
   * Rebuilds the in-memory index from Redis; concurrent callers share one run.
   * Retries until it succeeds or the persistence is closed (then the index
   * stays stale and the promise resolves: its callers do not handle errors).
   */
  resync (): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.index.markStale()
    this.opts.onIndexStale?.()
    if (this.resyncing) return this.resyncing
    this.resyncing = (async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        try {
          const snap = await this.r.snapshotSubscriptions(this.keys.subClients, this.keys.subVersion, this.keys.prefix + 'subs:')
          const clients: Array<[string, Array<[string, string]>]> = []
          for (let i = 1; i < snap.length; i += 2) {
            const flat = snap[i + 1] as string[]
            const pairs: Array<[string, string]> = []
            for (let j = 0; j < flat.length; j += 2) pairs.push([flat[j], flat[j + 1]])
            clients.push([snap[i] as string, pairs])
          }
          if (this.index.load(Number(snap[0]), clients)) return
        } catch {
          if (this.closed) return
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.min(100 * (attempt + 1), 1000))
            this.wakeResync = () => { clearTimeout(timer); resolve() }
          })
          this.wakeResync = null
        }
      }
    })().finally(() => { this.resyncing = null })
    return this.resyncing
  }

  async addSubscriptions (client: ClientRef, subs: Sub[]): Promise<void> {
    const already = this.storing.get(subs)
    if (already) return already
    const allowed = subs.filter((s) => this.opts.mayStore(client.id, s))
    const p = allowed.length === 0
      ? Promise.resolve()
      : this.change(client.id, 'add', allowed.flatMap((s) => [s.topic, JSON.stringify({ qos: s.qos, rh: s.rh, rap: s.rap, nl: s.nl })]))
    this.storing.set(subs, p)
    return p
  }

  async removeSubscriptions (client: ClientRef, topics: string[]): Promise<void> {
    if (topics.length > 0) await this.change(client.id, 'rm', topics)
  }

  async cleanSubscriptions (client: ClientRef): Promise<void> {
    // [MQTT-3.1.2-6] a clean session discards the previous session's state: subscriptions and queue.
    const claimed = this.claimedPart(client, CLAIM_DID_SUBS)
    if (claimed !== null) {
      if (claimed.subsVersion > 0) await this.indexed(claimed.subsVersion)
      return
    }
    await this.change(client.id, 'clean', [])
    const id = client.id
    await this.redis.del(this.keys.queueOf(id), this.keys.queuedPacketsOf(id), this.keys.inflightOf(id))
  }

  private async change (clientId: string, op: string, args: string[]): Promise<void> {
    await this.indexed(await this.r.changeSubscriptions(this.keys.subsOf(clientId), this.keys.subClients, this.keys.subVersion, clientId, this.keys.controlChannel, op, ...args))
  }

  /**
   * Resolves once this node's own index contains version `ver`, so a publish
   * right after SUBACK already queues for this client. The echo normally
   * takes well under a millisecond; if it is lost, resync.
   */
  private async indexed (ver: number): Promise<void> {
    const applied = this.index.waitFor(ver)
    const timer = setTimeout(() => { void this.resync() }, 1000)
    await applied.finally(() => clearTimeout(timer))
  }

  // ---- CONNECT's session work done by the claim -----------------------------

  /**
   * The session claim of this CONNECT (cluster/sessions.ts) deleted the
   * client's earlier will and, for a clean session, discarded the previous
   * session's state; `subsVersion` is the index version of the stored
   * subscriptions it discarded, or 0. Called once the claim is the holder's.
   */
  claimedAtConnect (client: ClientRef & { clean: boolean }, subsVersion: number): void {
    this.claimedConnects.set(client.id, { client, subsVersion, pending: client.clean ? CLAIM_DID_SUBS | CLAIM_DID_WILL | CLAIM_DID_INCOMING : CLAIM_DID_WILL })
  }

  /**
   * A connection with a claim ended. If it was another connection than the
   * one now connecting with its id, aedes may just have closed it to register
   * the new one (after the claim): what it stored since (inbound QoS 2) is
   * wiped by the new one's cleanIncoming in Redis, as aedes orders it.
   */
  connectionClosed (client: ClientRef): void {
    const c = this.claimedConnects.get(client.id)
    if (c === undefined) return
    if (c.client === client) this.claimedConnects.delete(client.id)
    else this.claimedPart(c.client as ClientRef, CLAIM_DID_INCOMING)
  }

  /** The claim's record of `client` if it did `part` and nobody asked for it yet; asking consumes it. */
  private claimedPart (client: ClientRef, part: number): ClaimedConnect | null {
    const c = this.claimedConnects.get(client.id)
    if (c === undefined || c.client !== client || (c.pending & part) === 0) return null
    c.pending &= ~part
    if (c.pending === 0) this.claimedConnects.delete(client.id)
    return c
  }

  async subscriptionsByClient (client: ClientRef): Promise<Sub[]> {
    const all = await this.redis.hgetall(this.keys.subsOf(client.id))
    return Object.entries(all).map(([topic, json]) => ({ topic, ...JSON.parse(json) }))
  }

  /**
   * Called for every QoS>0 publish. A stale index (a change may have been
   * missed) is never served: the publish waits for the resync, bounded, and
   * fails (no PUBACK) if Redis cannot give a snapshot in time.
   */
  async subscriptionsByTopic (topic: string): Promise<StoredSub[]> {
    if (this.index.stale) await this.whenCurrent()
    // No persistent session subscribed anywhere (clean clients only): no trie walk per publish.
    return this.index.subscriptionCount === 0 ? NONE : this.index.match(topic)
  }

  /**
   * False only when the index is current and no stored subscription matches
   * `topic`: a QoS>0 publish to it has no offline queue to fill, so the
   * broker's own publishers (the engine) may skip aedes' enqueue step.
   */
  mayQueue (topic: string): boolean {
    return this.index.stale || (this.index.subscriptionCount > 0 && this.index.match(topic).length > 0)
  }

  private async whenCurrent (): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error('subscription index is resyncing; publish refused')), STALE_WAIT_MS)
    })
    try {
      await Promise.race([this.resyncing ?? this.resync(), timeout])
    } finally { clearTimeout(timer) }
    if (this.closed) throw new Error('persistence closed; publish refused')
  }

  /** Marks a persistent client gone (for expiry) or back. */
  async sessionSeen (clientId: string, connected: boolean): Promise<void> {
    if (connected) await this.redis.zrem(this.keys.sessions, clientId)
    else await this.redis.zadd(this.keys.sessions, Date.now(), clientId)
  }

  /** Deletes sessions gone longer than `expirySec`; returns how many. */
  async expireSessions (expirySec: number): Promise<string[]> {
    return this.r.expireSessions(this.keys.sessions, this.keys.subClients, this.keys.subVersion, this.keys.owners,
      Date.now() - expirySec * 1000, this.keys.prefix, this.keys.controlChannel, 500)
  }

  async countOffline (): Promise<{ subsCount: number, clientsCount: number }> {
    return { subsCount: this.index.subscriptionCount, clientsCount: this.index.clientCount }
  }

  getClientList (topic: string): Readable {
    const ids = new Set(this.index.match(topic).filter((s) => s.topic === topic).map((s) => s.clientId))
    return Readable.from([...ids])
  }

  // ---- retained -----------------------------------------------------------

  async storeRetained (packet: Packet): Promise<void> {
    // The hash and its topic index change together (lua/storeRetainedMany-2.lua),
    // so a reader never sees a topic in one and not the other.
    const value = packet.payload.length === 0 ? '' : encodeFrame('', { ...packet, brokerCounter: 0 })
    await this.retainedWrites.write(packet.topic, value)
  }

  /** Admin removal of one retained message; true if there was one. */
  async deleteRetained (topic: string): Promise<boolean> {
    return await this.retainedWrites.write(topic, '') === 1
  }

  createRetainedStream (pattern: string): Readable {
    return Readable.from(packets(this.retainedBatches([pattern])))
  }

  /**
   * aedes' request for a new subscription's retained messages. A cluster
   * node sends them itself (mqtt/retained-delivery.ts), many per event-loop
   * turn; aedes then gets an empty stream.
   */
  createRetainedStreamCombi (patterns: string[]): Readable {
    if (this.retainedDelivery?.claim(patterns) === true) return Readable.from([])
    return Readable.from(packets(this.retainedBatches(patterns)))
  }

  /**
   * The retained messages matching `patterns`, one batch per Redis reply.
   * aedes pipes the retained stream without an error handler, so an error
   * here would crash the process. With Redis away, a new subscriber gets no
   * retained messages (the SUBACK already went out) and the failure is logged.
   */
  async * retainedBatches (patterns: string[]): AsyncGenerator<StoredRetained[]> {
    try {
      yield * this.retainedMatching(patterns)
    } catch (err) {
      this.opts.onReadFailed?.('retained', err as Error)
    }
  }

  /**
   * Exact topics: one HMGET. Wildcard filters with a literal first level:
   * only the index range of their literal prefix is read (ZRANGEBYLEX), so
   * the cost grows with the topics under that prefix, not with all retained
   * messages. `#` matches everything: HSCAN of the messages. Other filters
   * starting with a wildcard (`+/x`) may match any topic: the whole index is
   * read (topics only, a few bytes each) and only the matching messages.
   */
  private async * retainedMatching (patterns: string[]): AsyncGenerator<StoredRetained[]> {
    const exact = patterns.filter((p) => !GLOB_FREE.test(p))
    const wild = patterns.filter((p) => GLOB_FREE.test(p))
    const seen = new Set<string>()
    const sizer = new BatchSizer(RETAINED_BATCH_BYTES, RETAINED_FIRST, RETAINED_MIN, RETAINED_MAX)
    if (exact.length > 0) yield * this.retainedTopics(exact, seen, sizer)
    if (wild.length === 0) return
    const matcher = filterRegExp(wild)
    const all = wild.includes('#')
    // [MQTT-4.7.2-1] wildcards never reach $-topics here (as before the index).
    const matches = (topic: string): boolean => !topic.startsWith('$') && !seen.has(topic) && (all || matcher.test(topic))
    if (all) {
      yield * this.retainedScan(matches, seen, sizer)
      return
    }
    await this.ensureRetainedIndex()
    const prefixes = wild.map(literalPrefix)
    if (prefixes.some((p) => p === '')) {
      yield * this.retainedRange('-', '+', matches, seen, sizer)
      return
    }
    // "a/b/#" also matches "a/b" itself, which is outside the "a/b/" range.
    const parents = wild.filter((w) => w.endsWith('/#')).map((w) => w.slice(0, -2)).filter((t) => !GLOB_FREE.test(t) && matches(t))
    // Overlapping prefixes ("a/" and "a/b/") would read the same range twice: keep the shortest.
    const ranges = [...new Set(prefixes)].sort().filter((p, i, all) => !all.slice(0, i).some((q) => p.startsWith(q)))
    yield * this.retainedTopics(parents, seen, sizer)
    for (const prefix of ranges) {
      // 0xff never occurs in UTF-8, so it bounds every topic that starts with the prefix.
      yield * this.retainedRange('[' + prefix, Buffer.concat([Buffer.from('[' + prefix), Buffer.from([0xff])]), matches, seen, sizer)
    }
  }

  /** The matching messages of the index range [min, max], read a page of topics at a time. */
  private async * retainedRange (min: string, max: string | Buffer, matches: (topic: string) => boolean, seen: Set<string>, sizer: BatchSizer): AsyncGenerator<StoredRetained[]> {
    for (;;) {
      const topics = await this.readNow<string[]>((p) => p.zrangebylex(this.keys.retainedIndex, min, max, 'LIMIT', 0, RETAINED_INDEX_PAGE))
      yield * this.retainedTopics(topics.filter(matches), seen, sizer)
      if (topics.length < RETAINED_INDEX_PAGE) return
      // Each page starts after the last topic read (not at an offset, which Redis would walk again).
      min = '(' + topics[topics.length - 1]
    }
  }

  /** The messages of `topics`, one HMGET per batch. */
  private async * retainedTopics (topics: string[], seen: Set<string>, sizer: BatchSizer): AsyncGenerator<StoredRetained[]> {
    for (let i = 0; i < topics.length;) {
      const fields = topics.slice(i, i += sizer.next())
      const bufs = await this.readNow<Array<Buffer | null>>((p) => p.hmgetBuffer(this.keys.retained, ...fields))
      const batch: StoredRetained[] = []
      let found = 0
      let bytes = 0
      for (const buf of bufs) {
        if (buf === null) continue
        found++
        bytes += buf.length
        const p = retainedFromFrame(buf)
        if (p && !seen.has(p.topic)) { seen.add(p.topic); batch.push(p) }
      }
      sizer.saw(found, bytes)
      if (batch.length > 0) yield batch
    }
  }

  /** Every retained message (HSCAN), for `#`. */
  private async * retainedScan (matches: (topic: string) => boolean, seen: Set<string>, sizer: BatchSizer): AsyncGenerator<StoredRetained[]> {
    let cursor = '0'
    do {
      const [next, flat] = await this.readNow<[Buffer, Buffer[]]>((p) => p.hscanBuffer(this.keys.retained, cursor, 'COUNT', sizer.next()))
      cursor = next.toString()
      const batch: StoredRetained[] = []
      let bytes = 0
      // Only for `#`, which matches all but $-topics: decoded first, no field is read twice.
      for (let i = 1; i < flat.length; i += 2) {
        bytes += flat[i - 1].length + flat[i].length
        const p = retainedFromFrame(flat[i])
        if (p === null || !matches(p.topic)) continue
        seen.add(p.topic)
        batch.push(p)
      }
      sizer.saw(flat.length / 2, bytes)
      if (batch.length > 0) yield batch
    } while (cursor !== '0')
  }

  /**
   * One read of a retained delivery, written to Redis when called. Through
   * ioredis' auto-pipeline it waited for a setImmediate, that is until the
   * delivery had written the whole batch before (one synchronous run), so
   * the read meant to overlap a batch's writes followed them instead: Redis
   * worked while the node idled (5-7 ms per batch of 2,000 in a CPU profile
   * of a new `#` subscriber's node, at load 5-8).
   */
  private async readNow<T> (command: (p: ChainableCommander) => ChainableCommander): Promise<T> {
    const [[err, reply]] = (await command(this.redis.pipeline()).exec())!
    if (err) throw err
    return reply as T
  }

  private indexChecked: Promise<void> | null = null

  /**
   * Retained messages stored before the index existed (an older release)
   * are added to it once per process, the first time a prefix look-up needs
   * it. ZADD is idempotent, so nodes doing this at once do no harm.
   */
  private ensureRetainedIndex (): Promise<void> {
    this.indexChecked ??= (async () => {
      const [hlen, zcard] = await Promise.all([this.redis.hlen(this.keys.retained), this.redis.zcard(this.keys.retainedIndex)])
      if (zcard >= hlen) return
      let cursor = '0'
      do {
        const [next, flat] = await this.redis.hscan(this.keys.retained, cursor, 'COUNT', RETAINED_SCAN)
        cursor = next
        const args: Array<string | number> = []
        for (let i = 0; i < flat.length; i += 2) args.push(0, flat[i])
        if (args.length > 0) await this.redis.zadd(this.keys.retainedIndex, ...args)
      } while (cursor !== '0')
    })().catch((err: Error) => { this.indexChecked = null; throw err })
    return this.indexChecked
  }

  // ---- outgoing queues ------------------------------------------------------

  async outgoingEnqueue (sub: { clientId: string, qos?: number }, packet: Packet): Promise<void> {
    await this.outgoingEnqueueCombi([sub], packet)
  }

  async outgoingEnqueueCombi (subs: Array<{ clientId: string, qos?: number }>, packet: Packet): Promise<void> {
    if (subs.length === 0) return
    // One entry per client at the highest granted QoS of its matching filters,
    // downgraded to it [MQTT-3.8.4-6] [MQTT-3.3.5-1].
    const qosByClient = new Map<string, number>()
    for (const s of subs) {
      const q = Math.min(packet.qos, s.qos ?? packet.qos)
      if ((qosByClient.get(s.clientId) ?? -1) < q) qosByClient.set(s.clientId, q)
    }
    const keys: string[] = []
    const encoded: Buffer[] = []
    for (const [clientId, qos] of qosByClient) {
      keys.push(this.keys.queueOf(clientId), this.keys.queuedPacketsOf(clientId), this.keys.inflightOf(clientId))
      encoded.push(encodeFrame('', { ...packet, qos: qos as 0 | 1 | 2 }))
    }
    const dropped = await this.r.enqueue(keys.length, ...keys, packetKey(packet), this.opts.maxQueuedMessages, ...encoded)
    if (dropped > 0) {
      for (const clientId of qosByClient.keys()) {
        this.opts.onDropped?.(clientId, dropped)
        this.dropReports.dropped(clientId, dropped)
      }
    }
  }

  async outgoingUpdate (client: ClientRef, packet: Packet): Promise<void> {
    if (!packet.brokerId || packet.messageId === undefined) return
    await this.r.outgoingUpdate(this.keys.queuedPacketsOf(client.id), this.keys.inflightOf(client.id), packetKey(packet), packet.messageId)
  }

  async outgoingClearMessageId (client: ClientRef & { clean?: boolean }, packet: { messageId?: number }): Promise<Packet | undefined> {
    // A clean session has no queue in Redis (its subscriptions are never
    // stored; connecting clean deleted any old queue): a PUBACK from it had
    // one Lua call per QoS1 delivery that could only return nil (issue 8).
    if (packet.messageId === undefined || client.clean === true) return undefined
    const id = client.id
    const buf = await this.r.outgoingClearBuffer(this.keys.queueOf(id), this.keys.queuedPacketsOf(id), this.keys.inflightOf(id), packet.messageId)
    const p = buf && decodeFrame(buf)
    return p ? { ...toPacket(p.packet), messageId: packet.messageId } : undefined
  }

  outgoingStream (client: ClientRef): Readable {
    return Readable.from(this.queued(client), { objectMode: true, highWaterMark: 16 })
  }

  /**
   * The whole queue, in order, never truncated. The list of keys is read once
   * (a few bytes per entry); packets are then fetched in batches, so entries
   * acknowledged meanwhile are skipped rather than shifting a cursor.
   */
  private async * queued (client: ClientRef): AsyncGenerator<Packet> {
    const clientId = client.id
    const pkeys = await this.redis.lrange(this.keys.queueOf(clientId), 0, -1)
    for (let start = 0; start < pkeys.length; start += STREAM_BATCH) {
      const batch = pkeys.slice(start, start + STREAM_BATCH)
      const [bufs, mids] = await Promise.all([
        this.redis.hmgetBuffer(this.keys.queuedPacketsOf(clientId), ...batch),
        this.redis.hmget(this.keys.inflightOf(clientId), ...batch.map((k) => '#' + k)),
      ])
      for (let i = 0; i < batch.length; i++) {
        const p = bufs[i] && decodeFrame(bufs[i] as Buffer)
        if (!p || this.opts.deliveredLive?.(client, batch[i])) continue
        const pkt = toPacket(p.packet)
        if (mids[i] !== null) pkt.messageId = Number(mids[i])
        yield pkt
      }
    }
  }

  // ---- inbound QoS2 ---------------------------------------------------------

  async incomingStorePacket (client: ClientRef, packet: Packet): Promise<void> {
    await this.redis.hset(this.keys.incomingOf(client.id), String(packet.messageId), encodeFrame('', packet))
  }

  async incomingGetPacket (client: ClientRef, packet: { messageId?: number }): Promise<Packet> {
    const buf = await this.redis.hgetBuffer(this.keys.incomingOf(client.id), String(packet.messageId))
    const p = buf && decodeFrame(buf)
    if (!p) throw new Error('no such packet')
    return { ...toPacket(p.packet), messageId: packet.messageId }
  }

  async incomingDelPacket (client: ClientRef, packet: { messageId?: number }): Promise<void> {
    const n = await this.redis.hdel(this.keys.incomingOf(client.id), String(packet.messageId))
    if (n === 0) throw new Error('no such packet')
  }

  async cleanIncoming (client: ClientRef): Promise<void> {
    if (this.claimedPart(client, CLAIM_DID_INCOMING) !== null) return
    await this.redis.del(this.keys.incomingOf(client.id))
  }

  // ---- wills ----------------------------------------------------------------

  async putWill (client: ClientRef, packet: Packet): Promise<void> {
    const brokerId = this.broker!.id
    await this.r.putWill(this.keys.wills, this.keys.willsOf(brokerId), this.keys.gone, client.id, brokerId, encodeFrame('', { ...packet, brokerId, brokerCounter: 0, clientId: client.id }), this.keys.prefix)
  }

  async getWill (client: ClientRef): Promise<Packet | undefined> {
    const rec = await this.redis.hgetBuffer(this.keys.wills, client.id)
    return rec ? decodeWill(rec)?.packet : undefined
  }

  /**
   * aedes calls this with the Client when a new connection stores its will
   * (any earlier will of that client id is void), and with {id, brokerId}
   * when a connection ends (only that broker's will may go).
   */
  async delWill (client: ClientRef & { brokerId?: string }): Promise<Packet | undefined> {
    // The CONNECT's own: its claim deleted the will (and it returns nothing).
    if (this.claimedPart(client, CLAIM_DID_WILL) !== null) return undefined
    try {
      return (await this.takeWill(client.id, client.brokerId ?? ''))?.packet
    } catch (err) {
      // Never rejects: aedes' CONNECT runs `delWill(client).finally(...)` and
      // handles nothing, so a Redis command timeout here was an unhandled
      // rejection that killed the node (chaos R12). aedes goes on regardless
      // (it stores the new will next, which fails the CONNECT if Redis is
      // still away); its other callers ignore the outcome too.
      this.opts.onWriteFailed?.('delWill', client.id, err as Error)
      return undefined
    }
  }

  /** Atomically removes a will if `brokerId` (or anyone, with '') holds it. */
  async takeWill (clientId: string, brokerId: string): Promise<{ brokerId: string, packet: Packet } | null> {
    const rec = await this.r.takeWillBuffer(this.keys.wills, clientId, brokerId, this.keys.prefix)
    return rec ? decodeWill(rec) : null
  }

  /** Wills are published by the cluster's dead-node reaper (cluster/membership.ts), not by aedes' timer. */
  streamWill (): Readable {
    return Readable.from([])
  }

  /**
   * The node stops or this incarnation was fenced (cluster-runtime.ts): a
   * resync in progress gives up instead of retrying every second on a link
   * that is closed for good, and none starts any more.
   */
  close (): void {
    this.closed = true
    this.claimedConnects.clear()
    this.dropReports.close()
    this.wakeResync?.()
  }

  async destroy (): Promise<void> { this.close() }
}

/**
 * The levels of a filter before its first wildcard, with their separator
 * ("a/b/#" -> "a/b/", "a/+/c" -> "a/"), or "" when it starts with one.
 */
export function literalPrefix (filter: string): string {
  const levels = filter.split('/')
  const i = levels.findIndex((l) => l === '+' || l === '#')
  return i <= 0 ? '' : levels.slice(0, i).join('/') + '/'
}

/** One packet at a time, as aedes' retained stream (aedes sets the retain flag itself). */
async function * packets (batches: AsyncIterable<StoredRetained[]>): AsyncGenerator<{ cmd: 'publish', topic: string, payload: Buffer, qos: 0 | 1 | 2 }> {
  for await (const batch of batches) for (const p of batch) yield { cmd: 'publish', topic: p.topic, payload: p.payload, qos: p.qos }
}

function packetKey (p: { brokerId: string, brokerCounter: number }): string {
  return `${p.brokerId}:${p.brokerCounter}`
}

function toPacket (p: BusPacket): Packet {
  return { cmd: 'publish', ...p }
}

function decodeWill (rec: Buffer): { brokerId: string, packet: Packet } | null {
  const nl = rec.indexOf(10)
  if (nl < 0) return null
  const p = decodeFrame(rec.subarray(nl + 1))
  return p ? { brokerId: rec.toString('utf8', 0, nl), packet: toPacket(p.packet) } : null
}
