// The standalone node's store: the same contract as the Redis store, held in
// this process. Ids are "<seq>-0" so they compare like Redis stream ids.

import { EventEmitter } from 'node:events'
import { cloneState, type DefinitionChange, type ThingState } from '../index.ts'
import type { HistoryPoint } from './api.ts'
import type { OutMessage } from './batch.ts'
import type { EntryFields, LogEntry } from './entries.ts'
import { RuntimeError } from './errors.ts'
import type { BeatResult, Commit, EngineStore, LoadedPartition } from './store.ts'

interface Part { seq: number, log: LogEntry[], checkpoint: string, states: Map<string, ThingState>, outbox: OutMessage[][] }

export interface MemoryStoreOptions { partitions: number, backlogMax: number, historyMax: number, historyMaxAgeMs: number }

const seqOf = (id: string): number => id === '' ? 0 : Number(id.slice(0, id.indexOf('-')))

export class MemoryStore implements EngineStore {
  readonly mode = 'standalone' as const
  private readonly parts: Part[] = []
  private readonly hist = new Map<string, HistoryPoint[]>()
  private readonly alertIndex = new Map<string, { thingId: string, alert: unknown }>()
  private readonly defsLog: DefinitionChange[][] = []
  private readonly applied = new Map<string, number>()
  private readonly events = new EventEmitter()

  constructor (private readonly opts: MemoryStoreOptions) {
    for (let p = 0; p < opts.partitions; p++) this.parts.push({ seq: 0, log: [], checkpoint: '', states: new Map(), outbox: [] })
    this.events.setMaxListeners(0)
  }

  private part (p: number): Part {
    const part = this.parts[p]
    if (part === undefined) throw new RangeError(`no partition ${p}`)
    return part
  }

  async append (partition: number, entry: EntryFields): Promise<void> {
    const part = this.part(partition)
    if (part.log.length >= this.opts.backlogMax) throw new RuntimeError('ENGINE_BACKLOG_FULL')
    const id = `${++part.seq}-0`
    part.log.push({ ...entry, id })
    this.events.emit('append')
  }

  async read (from: ReadonlyMap<number, string>, count: number, blockMs: number): Promise<Array<{ partition: number, entries: LogEntry[] }>> {
    const collect = (): Array<{ partition: number, entries: LogEntry[] }> => {
      const out: Array<{ partition: number, entries: LogEntry[] }> = []
      for (const [p, after] of from) {
        const s = seqOf(after)
        const entries = this.part(p).log.filter((e) => seqOf(e.id) > s).slice(0, count)
        if (entries.length > 0) out.push({ partition: p, entries })
      }
      return out
    }
    const now = collect()
    if (now.length > 0 || blockMs <= 0) return now
    await new Promise<void>((resolve) => {
      const done = (): void => { clearTimeout(timer); this.events.off('append', done); resolve() }
      const timer = setTimeout(done, blockMs)
      this.events.on('append', done)
    })
    return collect()
  }

  async load (partition: number): Promise<LoadedPartition> {
    const part = this.part(partition)
    // Copies: the owner updates its states in place, and what it has not
    // committed must not be here.
    const states = new Map<string, ThingState>()
    for (const [id, st] of part.states) states.set(id, cloneState(st))
    return { checkpoint: part.checkpoint, states, outbox: part.outbox.map((b) => [...b]) }
  }

  async commit (c: Commit): Promise<void> {
    const part = this.part(c.partition)
    if (part.checkpoint !== c.from) throw new RuntimeError('ENGINE_CHECKPOINT_MOVED')
    for (const [id, s] of c.states) part.states.set(id, cloneState(s))
    for (const h of c.history) {
      const key = `${h.thingId}\u0000${h.property}`
      const list = this.hist.get(key) ?? []
      list.push({ ts: h.ts, value: h.value, quality: h.quality })
      const minTs = h.ts - this.opts.historyMaxAgeMs
      while (list.length > this.opts.historyMax || (this.opts.historyMaxAgeMs > 0 && list.length > 0 && (list[0] as HistoryPoint).ts < minTs)) list.shift()
      this.hist.set(key, list)
    }
    for (const a of c.alerts) this.alertIndex.set(`${a.thingId}/${a.alert}`, { thingId: a.thingId, alert: a.record })
    if (c.outbox.length > 0) part.outbox.push([...c.outbox])
    for (const f of c.feedback) {
      const target = this.part(f.partition)
      target.log.push({ ...f.entry, id: `${++target.seq}-0` })
    }
    part.checkpoint = c.to
    const upto = seqOf(c.to)
    part.log = part.log.filter((e) => seqOf(e.id) > upto)
    if (c.feedback.length > 0) this.events.emit('append')
  }

  async ackOutbox (partition: number, _token: number, batches: number): Promise<void> {
    this.part(partition).outbox.splice(0, batches)
  }

  async beat (brokerId: string): Promise<BeatResult> {
    // One node: it owns every partition, for good.
    const held = new Map<number, number>()
    for (let p = 0; p < this.opts.partitions; p++) held.set(p, 1)
    return { owners: this.parts.map(() => brokerId), held, live: [brokerId] }
  }

  async releaseAll (): Promise<void> {}

  async getState (partition: number, thingId: string, _properties?: Iterable<string>): Promise<ThingState | undefined> {
    return this.part(partition).states.get(thingId)
  }

  async history (thingId: string, property: string, from: number, to: number, limit: number): Promise<HistoryPoint[]> {
    return (this.hist.get(`${thingId}\u0000${property}`) ?? []).filter((h) => h.ts >= from && h.ts <= to).slice(0, limit)
  }

  async alerts (): Promise<Array<{ thingId: string, alert: unknown }>> {
    return [...this.alertIndex.values()]
  }

  async defsVersion (): Promise<number> { return this.defsLog.length }

  async defsChanges (from: number, to: number): Promise<DefinitionChange[][]> {
    return this.defsLog.slice(from - 1, to)
  }

  async defsPut (expected: number, changes: readonly DefinitionChange[]): Promise<boolean> {
    if (this.defsLog.length !== expected) return false
    this.defsLog.push([...changes])
    return true
  }

  async defsMarkApplied (brokerId: string, version: number): Promise<void> { this.applied.set(brokerId, version) }
  async defsApplied (): Promise<Map<string, number>> { return new Map(this.applied) }

  async notify (msg: { t: 'defs', version: number } | { t: 'applied', version: number, b: string }): Promise<void> {
    queueMicrotask(() => this.events.emit('notice', msg))
  }

  onNotice (handler: (msg: { t: string, version: number, b?: string }) => void): void {
    this.events.on('notice', handler)
  }

  async close (): Promise<void> {
    this.events.emit('append')
    this.events.removeAllListeners()
  }
}
