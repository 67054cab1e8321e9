// The engine runtime of one node: owns partitions, applies their logs in
// order with one fenced commit per batch, publishes committed effects from
// the outbox, ticks scheduled rules, and serves the EngineApi. The same code
// runs on the standalone node (MemoryStore) and in a cluster (RedisStore).

import {
  EngineError, nextDueAt, partitionOf, validateModule,
  type DefinitionChange, type Definitions, type ThingState,
} from '../index.ts'
import type { Logger } from '../../broker/log.ts'
import type { EngineApi, HistoryPoint, RolloutReport } from './api.ts'
import { processBatch, renderState, stateView, type CachedState, type OutMessage } from './batch.ts'
import { DefinitionsSync } from './definitions-sync.ts'
import type { EntryFields, LogEntry } from './entries.ts'
import { RuntimeError, runtimeCodeOf } from './errors.ts'
import { planBeat } from './owner.ts'
import type { EngineStore } from './store.ts'
import type { InboundWrite } from './topics.ts'

export interface EngineOptions {
  brokerId: string
  partitions: number
  /** Lease time to live; a node silent this long loses its partitions. */
  leaseMs: number
  /** Lease renewal period (about a quarter of leaseMs). */
  renewMs: number
  /** Most log entries read (and applied) per round over all owned partitions. */
  batchSize: number
  /** Longest a blocking log read waits (also how soon new partitions join the read). */
  readBlockMs: number
  rolloutTimeoutMs: number
  /** How often scheduled rules are checked. */
  tickMs: number
  /** Most effect batches published but not yet acknowledged per partition before processing waits. */
  maxPublishLag: number
  /** Most commits of one partition sent to the store and not yet answered; the next batch is processed meanwhile. */
  maxCommitsInFlight: number
  /**
   * Longest a routed batch waits before it is removed from the outbox, so
   * that the removals of several batches share one store call (0: at once).
   * A crash re-publishes what was not removed yet (see docs/engine.md, the
   * crash window), so this is also how much more that can be.
   */
  outboxAckDelayMs: number
}

export const DEFAULT_ENGINE_OPTIONS: Omit<EngineOptions, 'brokerId'> = Object.freeze({
  partitions: 64,
  leaseMs: 2000,
  renewMs: 500,
  batchSize: 1000,
  readBlockMs: 100,
  rolloutTimeoutMs: 2000,
  tickMs: 250,
  maxPublishLag: 16,
  maxCommitsInFlight: 2,
  outboxAckDelayMs: 50,
})

/** Log entries processed between two yields to the event loop (about 5-10 ms of work). */
const YIELD_AFTER = 200
/** Engine outputs published per event-loop turn, about (see publishSlot). */
const PUBLISH_PER_TURN = 400

export interface EngineHost {
  log: Logger
  /** Publishes one engine output through the broker (resolves when routed). */
  publish(msg: OutMessage): Promise<void>
  /** Broker ids of the live cluster members (rollout confirmation). */
  liveNodes(): string[]
}

interface Part {
  partition: number
  token: number
  /** Last entry id the store confirmed as applied. */
  checkpoint: string
  /** Last entry id processed in memory (ahead of `checkpoint` while commits are in flight): the next read starts here. */
  processedTo: string
  /** Commits sent and not yet answered. */
  committing: number
  cache: Map<string, CachedState>
  status: 'loading' | 'active' | 'draining' | 'dead'
  /** Committed batches handed to the broker, in commit order: resolves when the last one was handed over (not when it was routed). */
  issuing: Promise<void>
  /** Resolves when every batch handed over so far was routed (its removal from the outbox may still wait: scheduleAck). */
  publishing: Promise<void>
  /** Committed batches with effects whose outbox entry is not removed yet. */
  publishLag: number
  /** Batches routed (in commit order) and not yet acknowledged to the store. */
  toAck: number
  /** The outbox acknowledgements in flight (one at a time, so they stay in order, and the ones it triggers), or null. */
  acking: Promise<void> | null
  pendingTicks: Set<string>
}

export class ThingEngine implements EngineApi {
  readonly sync: DefinitionsSync
  private readonly parts = new Map<number, Part>()
  private owners: Array<string | null> = []
  private handOver = new Set<number>()
  private running = false
  private beatTimer: NodeJS.Timeout | null = null
  private tickTimer: NodeJS.Timeout | null = null
  private beating: Promise<void> | null = null
  /** Partitions with routed batches waiting for the next removal round (scheduleAck). */
  private readonly ackDue = new Set<Part>()
  private ackTimer: NodeJS.Timeout | null = null
  private loopDone: Promise<void> = Promise.resolve()
  /** Things with scheduled rules, by partition. */
  private scheduled = new Map<number, string[]>()
  private readonly log: Logger
  readonly stats = { applied: 0, commits: 0, published: 0, fenced: 0 }

  constructor (readonly store: EngineStore, private readonly host: EngineHost, readonly options: EngineOptions) {
    this.log = host.log.child({ component: 'engine' })
    this.sync = new DefinitionsSync({
      store,
      brokerId: options.brokerId,
      log: this.log,
      liveNodes: () => host.liveNodes(),
      rolloutTimeoutMs: options.rolloutTimeoutMs,
      onChange: (defs, previous) => {
        this.scheduled = scheduledThings(defs, options.partitions)
        // Not forward: Redis's definitions were reloaded (a failover lost
        // versions), and a version number may come back naming other
        // definitions, so cached states are reconciled again on next use.
        if (defs.version <= previous.version) for (const p of this.parts.values()) for (const c of p.cache.values()) c.defVersion = -1
      },
    })
  }

  get defs (): Definitions { return this.sync.defs }

  /** Catches up with the definitions, then starts owning partitions. */
  async start (): Promise<void> {
    // A node must run the current definitions before it applies any input.
    await this.sync.catchUp()
    this.running = true
    await this.beat()
    this.beatTimer = setInterval(() => { void this.beat() }, this.options.renewMs)
    this.beatTimer.unref()
    this.tickTimer = setInterval(() => { this.tick() }, this.options.tickMs)
    this.tickTimer.unref()
    this.loopDone = this.loop()
    this.log.info({ event: 'engine.started', version: this.defs.version, partitions: this.options.partitions, owned: this.parts.size }, 'engine started')
  }

  /** Graceful stop: finish the batch in hand, publish what is committed, give the partitions back. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    if (this.beatTimer) clearInterval(this.beatTimer)
    if (this.tickTimer) clearInterval(this.tickTimer)
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.ackTimer = null
    this.ackDue.clear()
    this.sync.stop()
    await this.loopDone
    await this.beating
    const held = new Map<number, number>()
    await Promise.allSettled([...this.parts.values()].map(async (part) => {
      await part.publishing
      // Not running any more: removals are no longer delayed (scheduleAck).
      await this.ackPublished(part)
      if (part.status !== 'dead') held.set(part.partition, part.token)
    }))
    try { await this.store.releaseAll(this.options.brokerId, held) } catch { /* the leases expire by themselves */ }
    this.parts.clear()
  }

  // ---- ingestion -------------------------------------------------------

  /** Durably appends a client's write to its thing's partition log. */
  async ingest (w: InboundWrite, payload: Buffer, clientId: string): Promise<void> {
    const entry: EntryFields = { t: w.thingId, k: w.kind === 'report' ? 'w' : 'd', p: w.property ?? '', v: payload.toString('utf8'), n: Date.now(), o: clientId, d: 0 }
    await this.store.append(partitionOf(w.thingId, this.options.partitions), entry)
  }

  // ---- ownership -------------------------------------------------------

  private beat (): Promise<void> {
    if (this.beating !== null) return this.beating
    this.beating = this.beatOnce().catch((err: Error) => {
      this.log.warn({ event: 'engine.beat_failed', err: err.message }, 'engine beat failed; leases renew on the next one')
    }).finally(() => { this.beating = null })
    return this.beating
  }

  private async beatOnce (): Promise<void> {
    const release = new Map<number, number>()
    for (const p of this.handOver) {
      const part = this.parts.get(p)
      if (part === undefined) { this.handOver.delete(p); continue }
      if (part.status === 'draining' && part.committing === 0 && part.publishLag === 0) {
        release.set(p, part.token)
        part.status = 'dead'
        this.parts.delete(p)
        this.handOver.delete(p)
      }
    }
    const want = this.running ? this.target : []
    const res = await this.store.beat(this.options.brokerId, want, release)
    this.owners = res.owners
    if (!this.running) return
    const plan = planBeat(this.options.brokerId, this.options.partitions, res, this.parts)
    this.target = plan.target
    for (const p of plan.lost) this.drop(p, 'lease lost')
    for (const a of plan.acquired) void this.acquire(a.partition, a.token)
    for (const p of plan.handOver) {
      const part = this.parts.get(p)
      if (part !== undefined && part.status === 'active') {
        part.status = 'draining'
        this.handOver.add(p)
      } else if (part !== undefined && part.status === 'loading') {
        this.handOver.add(p)
      }
    }
    if (plan.wantsMore || this.handOver.size > 0) setTimeout(() => { void this.beat() }, 50).unref()
  }

  private target: number[] = []

  private drop (p: number, why: string): void {
    const part = this.parts.get(p)
    if (part === undefined) return
    part.status = 'dead'
    this.parts.delete(p)
    this.handOver.delete(p)
    this.log.info({ event: 'engine.partition_dropped', partition: p, why }, 'stopped owning a partition')
  }

  private async acquire (p: number, token: number): Promise<void> {
    const existing = this.parts.get(p)
    if (existing !== undefined) existing.status = 'dead'
    const part: Part = { partition: p, token, checkpoint: '', processedTo: '', committing: 0, cache: new Map(), status: 'loading', issuing: Promise.resolve(), publishing: Promise.resolve(), publishLag: 0, toAck: 0, acking: null, pendingTicks: new Set() }
    this.parts.set(p, part)
    try {
      const loaded = await this.store.load(p)
      for (const [id, state] of loaded.states) part.cache.set(id, { state, defVersion: -1 })
      part.checkpoint = loaded.checkpoint
      part.processedTo = loaded.checkpoint
      // Effects the previous owner committed but may not have published:
      // publish them first (consumers dedupe on the effect id), then go on.
      const stored = (id: string): ThingState | undefined => loaded.states.get(id)
      for (const batch of loaded.outbox) {
        await this.publishAll(batch, stored)
        await this.store.ackOutbox(p, token, 1)
      }
      if (part.status !== 'loading') return
      part.status = this.handOver.has(p) ? 'draining' : 'active'
      this.log.debug({ event: 'engine.partition_acquired', partition: p, token, things: loaded.states.size, checkpoint: part.checkpoint, outbox: loaded.outbox.length }, 'owning a partition')
    } catch (err) {
      this.log.warn({ event: 'engine.acquire_failed', partition: p, err: (err as Error).message }, 'could not load a partition; retrying on the next beat')
      if (this.parts.get(p) === part) this.drop(p, 'load failed')
    }
  }

  // ---- applying the logs -----------------------------------------------

  /** Commits sent and not yet answered, over all partitions (the loop waits on them when nothing can be read). */
  private readonly commits = new Set<Promise<void>>()

  private async loop (): Promise<void> {
    let failures = 0
    while (this.running) {
      const from = new Map<number, string>()
      let heldBack = false
      for (const part of this.parts.values()) {
        if (part.status !== 'active') continue
        if (part.committing < this.options.maxCommitsInFlight && part.publishLag < this.options.maxPublishLag) from.set(part.partition, part.processedTo)
        else heldBack = true
      }
      if (from.size === 0) {
        // Every partition waits on its commits (or its publishing): go on as
        // soon as one commit is answered, not after a fixed pause.
        if (this.commits.size > 0) await Promise.race([...this.commits, delay(Math.min(this.options.readBlockMs, 20))])
        else await delay(Math.min(this.options.readBlockMs, 20))
        continue
      }
      let batches: Array<{ partition: number, entries: LogEntry[] }>
      // A round reads about batchSize entries over all partitions: under a
      // backlog, bigger commits cost less per entry (one script call and one
      // outbox batch each); processing yields every YIELD_AFTER entries.
      const perPartition = Math.max(10, Math.floor(this.options.batchSize / from.size))
      // A partition held back (commits in flight, publishing behind) is not
      // in this read, so a blocking read over the others would keep it
      // waiting up to readBlockMs after its commit was answered, backlog or
      // not (under load every partition came to wait on a read over the few
      // idle ones). Then read without blocking, and if nothing came wait for
      // the next commit answer instead.
      try {
        batches = await this.store.read(from, perPartition, heldBack ? 0 : this.options.readBlockMs)
        failures = 0
      } catch (err) {
        if (!this.running) break
        failures++
        if (failures === 1) this.log.warn({ event: 'engine.read_failed', err: (err as Error).message }, 'could not read partition logs; retrying')
        await delay(Math.min(1000, 50 * failures))
        continue
      }
      if (batches.length === 0 && heldBack) {
        if (this.commits.size > 0) await Promise.race([...this.commits, delay(Math.min(this.options.readBlockMs, 20))])
        else await delay(Math.min(this.options.readBlockMs, 5))
        continue
      }
      let sinceYield = 0
      for (const b of batches) {
        // Yield every YIELD_AFTER entries, so that MQTT packets and Redis
        // replies (commits answered: change notifications) still get a turn
        // within a few milliseconds during a large round.
        if (sinceYield >= YIELD_AFTER) {
          sinceYield = 0
          await new Promise<void>((resolve) => setImmediate(resolve))
        }
        this.apply(b.partition, b.entries)
        sinceYield += b.entries.length
      }
      // The next round is read and processed while these commits are in
      // flight: a round no longer waits a Redis round trip (and Redis's time
      // for the commit scripts) before it reads again.
    }
    await Promise.allSettled([...this.commits])
  }

  /**
   * Processes a batch in memory and sends its commit; does not wait for the
   * answer. Commits of a partition go out in processing order on one
   * connection, so the store applies them in that order, and each is refused
   * unless it starts at the stored checkpoint: if one fails (fenced, Redis
   * away), the ones sent after it fail too, and the partition is dropped and
   * reloaded from what the store has.
   */
  private apply (p: number, entries: LogEntry[]): void {
    const part = this.parts.get(p)
    const last = entries[entries.length - 1]
    if (part === undefined || part.status !== 'active' || last === undefined) return
    // Never apply entries at or before what was already processed. Entries
    // come in log order: only a prefix can be.
    let skip = 0
    if (part.processedTo !== '') while (skip < entries.length && compareIds((entries[skip] as LogEntry).id, part.processedTo) <= 0) skip++
    const fresh = skip === 0 ? entries : entries.slice(skip)
    if (fresh.length === 0) return
    const from = part.processedTo
    let r: ReturnType<typeof processBatch>
    try {
      r = processBatch({ partition: p, defs: this.defs, partitions: this.options.partitions, cache: part.cache }, fresh)
    } catch (err) {
      this.log.error({ event: 'engine.process_failed', partition: p, err: (err as Error).message }, 'could not process a batch; dropping the partition state')
      this.drop(p, 'process failed')
      return
    }
    part.processedTo = last.id
    part.committing++
    const committed = this.store.commit({
      partition: p, token: part.token, from, to: last.id,
      states: r.states, written: r.written, removed: r.removed, history: r.history, alerts: r.alerts, outbox: r.outbox, feedback: r.feedback,
    }).then(() => {
      if (part.status === 'dead') return
      part.checkpoint = last.id
      this.stats.applied += fresh.length
      this.stats.commits++
      for (const t of r.ticked) part.pendingTicks.delete(t)
      if (r.outbox.length > 0) this.publishCommitted(part, r.outbox, r.states, r.statePayloads)
    }, (err: unknown) => {
      const code = runtimeCodeOf(err)
      if (code === 'ENGINE_FENCED') this.stats.fenced++
      // Nothing of this batch was written; the in-memory states are ahead of
      // the store, so they go. If the lease is still ours the next beat
      // reloads the partition.
      if (this.parts.get(p) === part) {
        this.log.warn({ event: 'engine.commit_failed', partition: p, code, err: (err as Error).message }, 'commit refused; dropping the partition state')
        this.drop(p, code ?? 'commit failed')
      }
    }).finally(() => {
      part.committing--
      this.commits.delete(committed)
    })
    this.commits.add(committed)
  }

  /**
   * Publishes a committed batch and removes it from the outbox once it and
   * every batch before it were routed. A batch is handed to the broker as
   * soon as the previous one of its partition was handed over, without
   * waiting for that one's routing (a retained store, forwards) and outbox
   * removal, two Redis round trips that otherwise held every later change
   * notification of the partition back. Hand-over order is commit order, and
   * the broker keeps the order of what it is handed per topic (retained
   * stores are written in call order), so a later state never lands before
   * an earlier one. Removals stay in commit order and are coalesced.
   */
  private publishCommitted (part: Part, batch: readonly OutMessage[], states: ReadonlyMap<string, ThingState>, rendered: ReadonlyMap<string, string>): void {
    part.publishLag++
    let routed!: Promise<void>
    part.issuing = part.issuing.then(async () => {
      if (part.status === 'dead') { routed = RESOLVED; return }
      await this.publishSlot(batch.length)
      routed = this.isDead(part) ? RESOLVED : this.sendAll(batch, (id) => states.get(id), rendered)
    })
    const issued = part.issuing
    part.publishing = Promise.all([part.publishing, issued]).then(() => routed).then(() => {
      if (part.status === 'dead') return
      part.toAck++
      this.scheduleAck(part)
    }, (err: Error) => {
      // The outbox is acknowledged strictly in order: a batch that failed to
      // publish must not be skipped. Reload the partition, which publishes
      // the outbox again from the store.
      if (part.status === 'dead') return
      this.log.warn({ event: 'engine.publish_failed', partition: part.partition, err: err.message }, 'could not publish committed effects; reloading the partition')
      if (this.parts.get(part.partition) === part) this.drop(part.partition, 'publish failed')
    })
  }

  /** Read after an await: narrowing on `status` does not see a drop made meanwhile. */
  private isDead (part: Part): boolean { return part.status === 'dead' }

  /**
   * Removes routed batches from the outbox now or in the next removal round
   * (at most outboxAckDelayMs later, every partition's in the same turn, so
   * their calls share a socket write). Below capacity most batches carry an
   * update or two, and one removal call per batch cost about as much as its
   * commit: CPU that, on a busy node, made batches wait for the event loop.
   * At once when half of maxPublishLag is waiting (processing stops at
   * maxPublishLag), when the partition is being handed over, or when stopping.
   */
  private scheduleAck (part: Part): void {
    if (this.options.outboxAckDelayMs <= 0 || !this.running || part.status !== 'active' || part.toAck * 2 >= this.options.maxPublishLag) {
      void this.ackPublished(part)
      return
    }
    this.ackDue.add(part)
    if (this.ackTimer !== null) return
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null
      const due = [...this.ackDue]
      this.ackDue.clear()
      for (const p of due) void this.ackPublished(p)
    }, this.options.outboxAckDelayMs)
  }

  /**
   * Removes the routed batches from the outbox. One removal in flight per
   * partition; batches routed meanwhile go in the next, and the promise
   * returned covers it.
   */
  private ackPublished (part: Part): Promise<void> {
    if (part.acking !== null) return part.acking
    // So the first ackNext sends (it clears `acking` only from a callback).
    if (part.toAck === 0 || this.isDead(part)) return RESOLVED
    part.acking = this.ackNext(part)
    return part.acking
  }

  /** One removal of everything routed so far, then the next if more was routed meanwhile; clears `acking` when done. */
  private ackNext (part: Part): Promise<void> {
    const n = part.toAck
    if (n === 0 || part.status === 'dead') { part.acking = null; return RESOLVED }
    part.toAck = 0
    return this.store.ackOutbox(part.partition, part.token, n).then(() => {
      part.publishLag -= n
      return this.ackNext(part)
    }, (err: Error) => {
      part.acking = null
      if (part.status === 'dead') return
      this.log.warn({ event: 'engine.publish_failed', partition: part.partition, err: err.message }, 'could not remove published effects from the outbox; reloading the partition')
      if (this.parts.get(part.partition) === part) this.drop(part.partition, 'outbox ack failed')
    })
  }

  private publishBudget = PUBLISH_PER_TURN
  private budgetResetQueued = false

  /**
   * Publishing through aedes is synchronous work, and the commits of a round
   * complete together: without pacing, every partition's outbox would be
   * published in one turn, a block long enough on a starved CPU for Redis
   * command timeouts to fire before their replies are read. At most about
   * PUBLISH_PER_TURN messages go out per event-loop turn.
   */
  private async publishSlot (n: number): Promise<void> {
    while (this.publishBudget <= 0) await new Promise<void>((resolve) => setImmediate(resolve))
    this.publishBudget -= n
    if (!this.budgetResetQueued) {
      this.budgetResetQueued = true
      setImmediate(() => { this.publishBudget = PUBLISH_PER_TURN; this.budgetResetQueued = false })
    }
  }

  private async publishAll (batch: readonly OutMessage[], stateOf: (thingId: string) => ThingState | undefined, rendered?: ReadonlyMap<string, string>): Promise<void> {
    await this.publishSlot(batch.length)
    await this.sendAll(batch, stateOf, rendered)
  }

  /** Hands every message of a batch to the broker now, in order; resolves when all are routed. */
  private sendAll (batch: readonly OutMessage[], stateOf: (thingId: string) => ThingState | undefined, rendered?: ReadonlyMap<string, string>): Promise<void> {
    const sends: Array<Promise<void>> = []
    for (const m of batch) {
      const out = renderState(m, stateOf, rendered)
      if (out !== undefined) sends.push(this.host.publish(out))
    }
    this.stats.published += sends.length
    return Promise.all(sends).then(noop)
  }

  // ---- scheduled rules --------------------------------------------------

  private tick (): void {
    if (!this.running || this.scheduled.size === 0) return
    const now = Date.now()
    for (const part of this.parts.values()) {
      if (part.status !== 'active') continue
      for (const thingId of this.scheduled.get(part.partition) ?? []) {
        if (part.pendingTicks.has(thingId)) continue
        const def = this.defs.resolveThing(thingId)
        if (def === undefined) continue
        const state = part.cache.get(thingId)?.state
        const due = state === undefined ? Number.NEGATIVE_INFINITY : nextDueAt(state, def)
        if (due === undefined || due > now) continue
        part.pendingTicks.add(thingId)
        // A tick is an input like any other: logged, so it is applied once and
        // replayed identically. A duplicate tick (e.g. from an old owner) is
        // harmless: rules are only evaluated when due at the tick's time.
        this.store.append(part.partition, { t: thingId, k: 'tick', p: '', v: '', n: now, o: '', d: 0 }).catch(() => {
          part.pendingTicks.delete(thingId)
        })
      }
    }
  }

  // ---- EngineApi --------------------------------------------------------

  async status (): Promise<{ version: number, partitions: number, owners: Record<string, string>, nodes: Array<{ brokerId: string, version: number }> }> {
    const owners: Record<string, string> = {}
    this.owners.forEach((o, p) => { if (o !== null) owners[String(p)] = o })
    const applied = await this.store.defsApplied()
    const live = new Set([...this.host.liveNodes(), this.options.brokerId])
    const nodes = [...live].sort().map((brokerId) => ({ brokerId, version: applied.get(brokerId) ?? 0 }))
    return { version: this.defs.version, partitions: this.options.partitions, owners, nodes }
  }

  /** Partitions this node applies right now. */
  ownedPartitions (): number[] {
    return [...this.parts.values()].filter((p) => p.status === 'active').map((p) => p.partition).sort((a, b) => a - b)
  }

  private change (changes: DefinitionChange[]): Promise<RolloutReport> {
    return this.sync.change(changes)
  }

  putTemplate (def: unknown): Promise<RolloutReport> { return this.change([{ op: 'putTemplate', template: def } as DefinitionChange]) }
  deleteTemplate (id: string): Promise<RolloutReport> { return this.change([{ op: 'deleteTemplate', id }]) }
  putThing (def: unknown): Promise<RolloutReport> { return this.change([{ op: 'putThing', thing: def } as DefinitionChange]) }
  deleteThing (id: string): Promise<RolloutReport> { return this.change([{ op: 'deleteThing', id }]) }
  putRule (def: unknown): Promise<RolloutReport> { return this.change([{ op: 'putRule', rule: def } as DefinitionChange]) }
  deleteRule (id: string): Promise<RolloutReport> { return this.change([{ op: 'deleteRule', id }]) }

  async getTemplate (id: string): Promise<unknown | undefined> { return this.defs.templates.get(id) }
  async listTemplates (): Promise<unknown[]> { return [...this.defs.templates.values()] }
  async getRule (id: string): Promise<unknown | undefined> { return this.defs.rules.get(id) }
  async listRules (): Promise<unknown[]> { return [...this.defs.rules.values()] }

  async getThing (id: string): Promise<{ definition: unknown, state: unknown } | undefined> {
    const definition = this.defs.things.get(id)
    if (definition === undefined) return undefined
    const p = partitionOf(id, this.options.partitions)
    const local = this.parts.get(p)
    const names = this.defs.resolveThing(id)?.propertyNames ?? []
    const state: ThingState | undefined = local?.status === 'active' ? local.cache.get(id)?.state : await this.store.getState(p, id, names)
    return { definition, state: state === undefined ? null : { ...stateView(state), alerts: state.alerts } }
  }

  async listThings (opts: { template?: string, limit?: number, after?: string } = {}): Promise<unknown[]> {
    const limit = Math.max(1, Math.min(opts.limit ?? 1000, 10_000))
    const out: unknown[] = []
    const ids = [...this.defs.things.keys()].sort()
    for (const id of ids) {
      if (out.length >= limit) break
      if (opts.after !== undefined && id <= opts.after) continue
      const t = this.defs.things.get(id)
      if (t === undefined || (opts.template !== undefined && t.template !== opts.template)) continue
      out.push(t)
    }
    return out
  }

  async importModule (bundle: unknown, opts: { dryRun?: boolean } = {}): Promise<RolloutReport & { problems?: Array<{ code: string, path: string, message: string }> }> {
    await this.sync.catchUp()
    const first = validateModule(bundle, this.defs)
    if (!first.ok) {
      if (opts.dryRun === true) return { version: this.defs.version, appliedBy: [], missing: [], problems: first.problems }
      throw new EngineError('ENGINE_DEFINITIONS_REJECTED', `module rejected with ${first.problems.length} problem(s)`, { problems: first.problems })
    }
    if (opts.dryRun === true) return { version: this.defs.version, appliedBy: [], missing: [], problems: [] }
    // All changes go in as one version: every node applies all of them or none.
    return this.sync.change(first.changes, (current) => {
      if (current === this.defs && current.version === first.definitions.version - 1) return first.definitions
      const again = validateModule(bundle, current)
      if (!again.ok) throw new EngineError('ENGINE_DEFINITIONS_REJECTED', `module rejected with ${again.problems.length} problem(s)`, { problems: again.problems })
      return again.definitions
    })
  }

  async exportModule (): Promise<unknown> {
    const s = this.defs.toSnapshot()
    return { version: 1, templates: s.templates, things: s.things, rules: s.rules }
  }

  async historyQuery (thingId: string, property: string, from = 0, to = Number.POSITIVE_INFINITY, limit = 1000): Promise<HistoryPoint[]> {
    return this.store.history(thingId, property, from, to, Math.max(1, Math.min(limit, 10_000)))
  }

  async listAlerts (opts: { thingId?: string, state?: 'active' | 'acknowledged' | 'cleared' } = {}): Promise<unknown[]> {
    const all = await this.store.alerts()
    return all
      .filter((a) => opts.thingId === undefined || a.thingId === opts.thingId)
      .filter((a) => opts.state === undefined || (a.alert as { status?: string }).status === opts.state)
      .map((a) => ({ thingId: a.thingId, ...(a.alert as object) }))
  }

  async ackAlert (thingId: string, alert: string, by: string): Promise<void> {
    if (this.defs.things.get(thingId) === undefined) throw new EngineError('ENGINE_UNKNOWN_THING', `unknown thing "${thingId.slice(0, 128)}"`)
    // Through the log like any input, so the owner applies it in order.
    await this.store.append(partitionOf(thingId, this.options.partitions), { t: thingId, k: 'ack', p: alert, v: by, n: Date.now(), o: '', d: 0 })
  }
}

/** Stream ids "ms-seq" compared numerically. */
export function compareIds (a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number)
  const [bm = 0, bs = 0] = b.split('-').map(Number)
  return am - bm || as - bs
}

const RESOLVED = Promise.resolve()
function noop (): void {}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Things that have at least one scheduled rule, grouped by partition. */
export function scheduledThings (defs: Definitions, partitions: number): Map<number, string[]> {
  const byTemplate = new Set<string>()
  const byThing = new Set<string>()
  for (const r of defs.rules.values()) {
    if (r.everySeconds === undefined || r.enabled === false) continue
    if (r.template !== undefined) byTemplate.add(r.template)
    if (r.thing !== undefined) byThing.add(r.thing)
  }
  const out = new Map<number, string[]>()
  if (byTemplate.size === 0 && byThing.size === 0) return out
  const chainHas = (template: string): boolean => {
    const seen = new Set<string>()
    let t: string | undefined = template
    while (t !== undefined && !seen.has(t)) {
      if (byTemplate.has(t)) return true
      seen.add(t)
      t = defs.templates.get(t)?.extends
    }
    return false
  }
  for (const th of defs.things.values()) {
    if (!byThing.has(th.id) && !chainHas(th.template)) continue
    const p = partitionOf(th.id, partitions)
    const list = out.get(p) ?? []
    list.push(th.id)
    out.set(p, list)
  }
  return out
}

export { RuntimeError }
