import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Qlobber } = require('qlobber') as { Qlobber: new (o: object) => Matcher }
interface Matcher { add(f: string, v: string): void, remove(f: string, v?: string): void, match(t: string): string[] }

export interface InterestChange { v: 1, t: 'interest', b: string, seq: number, op: 'add' | 'rm', f: string[] }

/**
 * `heard`: the highest version announced on the control channel while the
 * set was being read. A change announced after the read was done in Redis
 * can reach us before the read's reply (two connections), so a read older
 * than what was heard meanwhile is read again.
 */
interface Remote { seq: number, filters: Set<string>, known: boolean, heard: number }

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

  constructor (private readonly self: string, private readonly io: InterestIo, private readonly onError: (err: Error) => void) {}

  /** The nodes a publish on `topic` must go to (never this node). */
  targets (topic: string): string[] {
    // No other live node (a single-node cluster): nothing to match, and a
    // Qlobber match per publish was 2.3% of the node's CPU (issue 8).
    if (this.remotes.size === 0) return NO_TARGETS
    const hits = this.matcher.match(topic)
    if (this.unknown.length === 0 && hits.length <= 1) return hits
    const set = new Set(hits)
    for (const b of this.unknown) set.add(b)
    return [...set]
  }

  /** Live members changed: learn new nodes, forget gone ones. */
  setMembers (brokerIds: string[]): void {
    const live = new Set(brokerIds.filter((b) => b !== this.self))
    for (const b of live) if (!this.remotes.has(b)) { this.remotes.set(b, { seq: 0, filters: new Set(), known: false, heard: 0 }); void this.resync(b) }
    for (const b of [...this.remotes.keys()]) if (!live.has(b)) this.forget(b)
    this.refreshUnknown()
  }

  apply (c: InterestChange): void {
    if (c.b === this.self) return
    let r = this.remotes.get(c.b)
    if (!r) { r = { seq: 0, filters: new Set(), known: false, heard: 0 }; this.remotes.set(c.b, r); this.refreshUnknown() }
    if (!r.known) { r.heard = Math.max(r.heard, c.seq); void this.resync(c.b); return }
    if (c.seq <= r.seq) return
    if (c.seq !== r.seq + 1) { r.known = false; this.refreshUnknown(); void this.resync(c.b); return }
    r.seq = c.seq
    for (const f of c.f) {
      if (c.op === 'add') { if (!r.filters.has(f)) { r.filters.add(f); this.matcher.add(f, c.b) } } else if (r.filters.delete(f)) this.matcher.remove(f, c.b)
    }
  }

  /** After our pub/sub link was cut, every remote set may be stale. */
  resyncAll (): void {
    for (const [b, r] of this.remotes) { r.known = false; void this.resync(b) }
    this.refreshUnknown()
  }

  private resync (b: string): Promise<void> {
    const running = this.resyncing.get(b)
    if (running) return running
    const started = this.remotes.get(b)
    if (started) started.heard = 0
    let again = false
    const p = (async () => {
      try {
        const snap = await this.io.snapshot(b)
        const r = this.remotes.get(b)
        if (!r) return
        for (const f of r.filters) this.matcher.remove(f, b)
        r.filters = new Set(snap.filters)
        for (const f of r.filters) this.matcher.add(f, b)
        r.seq = snap.seq
        // Stays unknown (gets every publish) until a read is at least as new as what was heard.
        r.known = r.heard <= snap.seq
        again = !r.known
      } catch (err) {
        this.onError(err as Error) // stays unknown: it keeps getting every publish; retried on the next change or membership beat
      } finally {
        this.resyncing.delete(b)
        this.refreshUnknown()
        if (again) void this.resync(b)
      }
    })()
    this.resyncing.set(b, p)
    return p
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
  }

  private refreshUnknown (): void {
    this.unknown = [...this.remotes].filter(([, r]) => !r.known).map(([b]) => b)
  }

  describe (): Record<string, { seq: number, filters: number, known: boolean }> {
    return Object.fromEntries([...this.remotes].map(([b, r]) => [b, { seq: r.seq, filters: r.filters.size, known: r.known }]))
  }
}
