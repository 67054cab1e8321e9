import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Qlobber } = require('qlobber') as { Qlobber: new (o: object) => Matcher }
interface Matcher { add(f: string, v: string): void, remove(f: string, v?: string): void, match(t: string): string[] }

export interface InterestChange { v: 1, t: 'interest', b: string, seq: number, op: 'add' | 'rm', f: string[] }

/**
 * A remote node's set as far as we know it. `seq` is the version `filters`
 * reflect; `based` says a snapshot was loaded. Changes that cannot be applied
 * yet (no snapshot, or a version missing before them) wait in `held`: a
 * change announced after our read was done in Redis can reach us before the
 * read's reply (two connections), and is applied on top of the snapshot
 * instead of making us read the whole set again. Known = based and nothing
 * held: a version gap means a change we have not heard (yet).
 */
interface Remote { seq: number, filters: Set<string>, based: boolean, known: boolean, held: Map<number, InterestChange>, cuts: number }

/**
 * Changes held per node while its set is unknown, at most; past this the
 * oldest are dropped and the next read catches up (a subscribe storm during a
 * long read must not grow memory without bound).
 */
const MAX_HELD = 10_000
/** Topics whose targets() answer is kept (interest.ts cache). */
const CACHE_MAX = 4096

export interface InterestIo {
  /** Atomically reads a node's interest set and version. */
  snapshot(brokerId: string): Promise<{ seq: number, filters: string[] }>
}

const NO_TARGETS: string[] = Object.freeze([]) as unknown as string[]

/**
 * Which nodes need a publish. Every node announces the filters its clients
 * subscribed to (versioned, see lua/changeInterest-3.lua); this table holds
 * the other nodes' sets and answers "which nodes have a subscriber matching
 * this topic". A node whose set is not known yet (just joined, or a version
 * gap is being repaired) gets every publish: routing errs on delivering.
 */
export class InterestTable {
  private readonly remotes = new Map<string, Remote>()
  private readonly matcher: Matcher = new Qlobber({ wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true })
  private readonly resyncing = new Map<string, Promise<void>>()
  private unknown: string[] = []
  /**
   * Answers of targets() by topic, dropped whenever a filter or an unknown
   * node changes: a device publishes on the same few topics, and a Map look-up
   * is cheaper than Qlobber's split and match per publish. Bounded: cleared
   * when full (at most CACHE_MAX topics kept).
   */
  private cache = new Map<string, string[]>()

  constructor (private readonly self: string, private readonly io: InterestIo, private readonly onError: (err: Error) => void) {}

  /** The nodes a publish on `topic` must go to (never this node). */
  targets (topic: string): string[] {
    // No other live node (a single-node cluster): nothing to match, and a
    // Qlobber match per publish was 2.3% of the node's CPU (issue 8).
    if (this.remotes.size === 0) return NO_TARGETS
    const cached = this.cache.get(topic)
    if (cached !== undefined) return cached
    const hits = this.matcher.match(topic)
    let out = hits
    if (this.unknown.length > 0 || hits.length > 1) {
      const set = new Set(hits)
      for (const b of this.unknown) set.add(b)
      out = [...set]
    }
    if (this.cache.size >= CACHE_MAX) this.cache = new Map()
    this.cache.set(topic, out)
    return out
  }

  /** A new map rather than clear(): clearing is linear in the entries, and a subscribe storm changes filters often. */
  private dropCache (): void {
    if (this.cache.size > 0) this.cache = new Map()
  }

  /** Live members changed: learn new nodes, forget gone ones. */
  setMembers (brokerIds: string[]): void {
    const live = new Set(brokerIds.filter((b) => b !== this.self))
    for (const b of live) if (!this.remotes.has(b)) { this.remotes.set(b, newRemote()); void this.resync(b) }
    for (const b of [...this.remotes.keys()]) if (!live.has(b)) this.forget(b)
    this.refreshUnknown()
  }

  apply (c: InterestChange): void {
    if (c.b === this.self) return
    let r = this.remotes.get(c.b)
    if (!r) { r = newRemote(); this.remotes.set(c.b, r); this.refreshUnknown() }
    // No snapshot yet: whatever version it will have, this may come after it.
    if (!r.based) { hold(r, c); void this.resync(c.b); return }
    if (c.seq <= r.seq) return
    if (r.known && c.seq === r.seq + 1) { this.applyOne(r, c); return }
    // A version is missing before this one: hold it until the gap is filled.
    hold(r, c)
    this.drain(r)
    if (!r.known) void this.resync(c.b)
  }

  /** After our pub/sub link was cut, every remote set may be stale (changes may have been missed). */
  resyncAll (): void {
    // Redis may have restarted without its data: versions start over, so the next read is the truth.
    for (const [b, r] of this.remotes) { r.known = false; r.based = false; r.held.clear(); r.cuts++; void this.resync(b) }
    this.refreshUnknown()
  }

  /**
   * Reads a node's set and applies the changes held meanwhile on top. One
   * read at a time per node; a read that leaves a gap is not repeated at
   * once (the missing change is most likely still on its way on the control
   * channel): the node stays unknown, gets every publish, and is read again
   * on the next change that cannot be applied or on the next membership beat.
   */
  private resync (b: string): Promise<void> {
    const running = this.resyncing.get(b)
    if (running) return running
    const cuts = this.remotes.get(b)?.cuts
    let again = false
    const p = (async () => {
      try {
        const snap = await this.io.snapshot(b)
        const r = this.remotes.get(b)
        if (!r) return
        // Our link was cut while this read was out: it may predate changes we will never hear.
        if (r.cuts !== cuts) { again = true; return }
        const next = new Set(snap.filters)
        // Only the difference touches the matcher: re-adding every filter of a
        // large set on each read was the cost that grew with the set.
        for (const f of r.filters) if (!next.has(f)) this.matcher.remove(f, b)
        for (const f of next) if (!r.filters.has(f)) this.matcher.add(f, b)
        this.dropCache()
        r.filters = next
        r.seq = snap.seq
        r.based = true
        this.drain(r)
      } catch (err) {
        this.onError(err as Error) // stays unknown: it keeps getting every publish; retried on the next change or membership beat
      } finally {
        this.resyncing.delete(b)
        if (again) void this.resync(b)
      }
    })()
    this.resyncing.set(b, p)
    return p
  }

  /** Applies held changes that follow on from `r.seq`; known once none is left waiting. */
  private drain (r: Remote): void {
    for (const seq of [...r.held.keys()]) if (seq <= r.seq) r.held.delete(seq)
    for (let c = r.held.get(r.seq + 1); c !== undefined; c = r.held.get(r.seq + 1)) {
      r.held.delete(c.seq)
      this.applyOne(r, c)
    }
    const known = r.held.size === 0
    if (known !== r.known) { r.known = known; this.refreshUnknown() }
  }

  private applyOne (r: Remote, c: InterestChange): void {
    r.seq = c.seq
    this.dropCache()
    for (const f of c.f) {
      if (c.op === 'add') { if (!r.filters.has(f)) { r.filters.add(f); this.matcher.add(f, c.b) } } else if (r.filters.delete(f)) this.matcher.remove(f, c.b)
    }
  }

  /** Retries nodes still unknown (called on every membership beat). */
  retryUnknown (): void {
    for (const b of this.unknown) void this.resync(b)
  }

  private forget (b: string): void {
    const r = this.remotes.get(b)
    if (!r) return
    for (const f of r.filters) this.matcher.remove(f, b)
    this.remotes.delete(b)
    this.dropCache()
  }

  private refreshUnknown (): void {
    this.unknown = [...this.remotes].filter(([, r]) => !r.known).map(([b]) => b)
    this.dropCache()
  }

  describe (): Record<string, { seq: number, filters: number, known: boolean }> {
    return Object.fromEntries([...this.remotes].map(([b, r]) => [b, { seq: r.seq, filters: r.filters.size, known: r.known }]))
  }
}

function newRemote (): Remote {
  return { seq: 0, filters: new Set(), based: false, known: false, held: new Map(), cuts: 0 }
}

function hold (r: Remote, c: InterestChange): void {
  r.held.set(c.seq, c)
  if (r.held.size > MAX_HELD) r.held.delete(r.held.keys().next().value!)
}
