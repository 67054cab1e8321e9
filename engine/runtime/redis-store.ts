// The cluster's engine store. Every multi-key change is one Lua script in
// ./lua (file name = key count, header = KEYS/ARGV/reply); single-key reads
// and writes are plain commands. Keys come from broker/cluster/keys.ts.

import type { Redis } from 'ioredis'
import type { EngineKeys } from '../../broker/cluster/keys.ts'
import type { DefinitionChange, ThingState } from '../index.ts'
import { FORBIDDEN_KEYS, getOwn } from '../json.ts'
import { isHeadSaved, markHeadSaved } from '../thing/index.ts'
import type { HistoryPoint } from './api.ts'
import type { OutMessage } from './batch.ts'
import { decodeEntry, type EntryFields, type LogEntry } from './entries.ts'
import { decodeOutbox, encodeOutbox, entryFields, entryWidth, LATEST_FORMAT, type StoreFormat } from './formats.ts'
import { RuntimeError, runtimeCodeOf } from './errors.ts'
import type { BeatResult, Commit, EngineStore, LoadedPartition } from './store.ts'

/** Directory of the engine's Lua scripts, for defineScripts(). */
export const ENGINE_LUA_DIR = new URL('./lua/', import.meta.url)

interface Scripts {
  // Keys and arguments go as arrays: ioredis flattens a command's arguments
  // once anyway, and spreading thousands of them into a call copies them twice more.
  ingest(numKeys: number, keys: string[], args: string[]): Promise<number[]>
  beat(k1: string, k2: string, k3: string, ...args: string[]): Promise<[string[], string[]]>
  outboxAck(k1: string, k2: string, ...args: string[]): Promise<number>
  defsPut(k1: string, k2: string, ...args: string[]): Promise<[number, number]>
  defsHead(k1: string, k2: string, ...args: string[]): Promise<[number, string, string]>
  commit(numKeys: number, keys: string[], args: string[]): Promise<number>
  format(k1: string, k2: string, newest: string): Promise<number>
}

export interface RedisStoreOptions {
  /** Commands and scripts (ENGINE_LUA_DIR defined on it). */
  cmd: Redis
  /** Blocking XREAD only. */
  reader: Redis
  /** Subscriber connection for the engine channel. */
  sub: Redis
  keys: EngineKeys
  partitions: number
  backlogMax: number
  historyMax: number
  historyMaxAgeMs: number
  leaseMs: number
}

type XReadReply = Array<[string, Array<[string, string[]]>]>

interface PendingAppend {
  partition: number
  entry: EntryFields
  resolve(): void
  reject(err: Error): void
}

/** Separates a thing id from a property name in state fields; thing ids cannot contain it (engine/model/schema.ts). */
const PROPERTY_SEP = '/'

/** The state field of a thing without its properties (they have a field each). */
function stateHead (s: ThingState): string {
  return JSON.stringify({ v: s.v, thingId: s.thingId, seq: s.seq, rules: s.rules, alerts: s.alerts, shadow: s.shadow })
}

/**
 * A stored property field: its property state, and in format 2 the thing's
 * `seq` when it was written (a trailing member, taken off here so the cached
 * state stays as processInput makes it).
 */
function readPropertyField (json: string): { p: ThingState['properties'][string], seq: number } {
  const p = JSON.parse(json) as ThingState['properties'][string] & { seq?: unknown }
  if (typeof p.seq !== 'number') return { p, seq: 0 }
  const clean: ThingState['properties'][string] = { current: p.current }
  if (p.counted !== undefined) clean.counted = p.counted
  if (p.prev !== undefined) clean.prev = p.prev
  if (p.changedAt !== undefined) clean.changedAt = p.changedAt
  return { p: clean, seq: p.seq }
}

/** A property field: its JSON, in format 2 with `seqTail` (`,"seq":N}`) in place of the closing brace. */
function propertyField (p: ThingState['properties'][string], seqTail: string): string {
  const json = JSON.stringify(p)
  return seqTail === '' ? json : json.slice(0, -1) + seqTail
}

/** The 1-based KEYS index of `key` in a script call's keys, added on first use. */
function keyNumber (keys: string[], index: Map<string, number>, key: string): string {
  let i = index.get(key)
  if (i === undefined) { keys.push(key); i = keys.length; index.set(key, i) }
  return String(i)
}

/** `eng:defs:applied` field of a node's write id, next to its version (broker ids are node ids: no '#'). */
const APPLIED_ID_SUFFIX = '#id'

/** Most entries one ingest script call carries: bounds the command size and the time Redis spends in one script. */
const INGEST_BATCH_MAX = 512

export class RedisStore implements EngineStore {
  readonly mode = 'cluster' as const
  private readonly s: Scripts
  private readonly k: EngineKeys
  private readonly partitionOfKey = new Map<string, number>()
  private noticeHandlers: Array<(msg: { t: string, version: number, b?: string }) => void> = []
  private reconnectHandlers: Array<() => void> = []
  private pending: PendingAppend[] = []
  private flushScheduled = false
  /**
   * The format log entries and outbox batches are written in: the cluster's
   * switch (lua/format-2.lua), read on every beat. 1 until the first beat
   * says otherwise: every release reads it.
   */
  private format: StoreFormat = 1

  constructor (private readonly o: RedisStoreOptions) {
    this.s = o.cmd as unknown as Scripts
    this.k = o.keys
    for (let p = 0; p < o.partitions; p++) this.partitionOfKey.set(o.keys.logOf(p), p)
    o.sub.on('message', (channel: string, message: string) => {
      if (channel !== this.k.channel) return
      let msg: { v?: number, t?: string, version?: number, b?: string }
      try { msg = JSON.parse(message) } catch { return }
      // Notices are versioned: a node of another release ignores what it cannot read.
      if (msg.v !== 1 || typeof msg.t !== 'string' || typeof msg.version !== 'number') return
      for (const h of this.noticeHandlers) h(msg as { t: string, version: number, b?: string })
    })
    // A notice published while a link was down is gone for good (pub/sub
    // keeps nothing), and after a failover the new primary may hold another
    // history: whoever listens re-reads the log head.
    const up = { cmd: o.cmd.status === 'ready', sub: o.sub.status === 'ready' }
    const back = (): void => { for (const h of this.reconnectHandlers) h() }
    o.cmd.on('ready', () => { if (up.cmd) back(); up.cmd = true })
    o.sub.on('ready', () => {
      if (!up.sub) { up.sub = true; return }
      // ioredis resubscribes right after emitting 'ready': a PING queued
      // behind the SUBSCRIBE answers once notices flow again, and a read made
      // then misses nothing.
      setImmediate(() => { o.sub.ping().then(back, () => { /* down again: the next 'ready' */ }) })
    })
  }

  async subscribe (): Promise<void> {
    await this.o.sub.subscribe(this.k.channel)
  }

  /**
   * Appends are gathered over one event-loop turn and sent as one script
   * call (in call order, so per-thing order is kept): under load a turn
   * brings tens of writes, and one call each was most of the ingest cost.
   */
  append (partition: number, entry: EntryFields): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ partition, entry, resolve, reject })
      if (this.pending.length >= INGEST_BATCH_MAX) this.flush()
      else if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => { this.flushScheduled = false; this.flush() })
      }
    })
  }

  private flush (): void {
    const batch = this.pending
    if (batch.length === 0) return
    this.pending = []
    const keys: string[] = []
    const keyIndex = new Map<number, string>()
    const format = this.format
    const args: string[] = [String(this.o.backlogMax), entryWidth(format)]
    for (const a of batch) {
      let i = keyIndex.get(a.partition)
      if (i === undefined) {
        keys.push(this.k.logOf(a.partition))
        i = String(keys.length)
        keyIndex.set(a.partition, i)
      }
      args.push(i)
      for (const f of entryFields(a.entry, format)) args.push(f)
    }
    this.s.ingest(keys.length, keys, args).then((refused) => {
      let r = 0
      for (let i = 0; i < batch.length; i++) {
        const a = batch[i] as PendingAppend
        if (refused[r] === i + 1) { r++; a.reject(new RuntimeError('ENGINE_BACKLOG_FULL')) } else a.resolve()
      }
    }, (err: Error) => {
      for (const a of batch) a.reject(err)
    })
  }

  async read (from: ReadonlyMap<number, string>, count: number, blockMs: number): Promise<Array<{ partition: number, entries: LogEntry[] }>> {
    if (from.size === 0) return []
    const keys: string[] = []
    const ids: string[] = []
    for (const [p, id] of from) { keys.push(this.k.logOf(p)); ids.push(id === '' ? '0-0' : id) }
    const reply = (blockMs > 0
      ? await this.o.reader.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', ...keys, ...ids)
      : await this.o.reader.xread('COUNT', count, 'STREAMS', ...keys, ...ids)) as XReadReply | null
    if (reply === null) return []
    const out = this.decodeRead(reply)
    // Redis (7.0) answers a blocked multi-stream XREAD as soon as one of its
    // streams gets an entry, with that stream only, although the ingest call
    // that woke it appended to many partitions at once. Read the others at
    // once, without blocking: below capacity a round then carries the new
    // entries of every partition, not one partition's update or two. A reply
    // with several streams was not a wake-up (data was there already): it
    // holds them all.
    if (blockMs > 0 && reply.length === 1 && from.size > 1) {
      const got = reply[0]?.[0]
      const restKeys: string[] = []
      const restIds: string[] = []
      for (let i = 0; i < keys.length; i++) if (keys[i] !== got) { restKeys.push(keys[i] as string); restIds.push(ids[i] as string) }
      const more = await this.o.reader.xread('COUNT', count, 'STREAMS', ...restKeys, ...restIds) as XReadReply | null
      if (more !== null) for (const b of this.decodeRead(more)) out.push(b)
    }
    return out
  }

  private decodeRead (reply: XReadReply): Array<{ partition: number, entries: LogEntry[] }> {
    const out: Array<{ partition: number, entries: LogEntry[] }> = []
    for (const [key, items] of reply) {
      const partition = this.partitionOfKey.get(key)
      if (partition === undefined) continue
      const entries: LogEntry[] = []
      for (const [id, fields] of items) {
        const e = decodeEntry(id, fields)
        // An undecodable entry still advances the checkpoint: it is skipped
        // (kind 'tick' for an unknown thing produces nothing), never retried forever.
        entries.push(e ?? { id, t: '', k: 'tick', p: '', v: '', n: 0, o: '', d: 0 })
      }
      out.push({ partition, entries })
    }
    return out
  }

  async load (partition: number): Promise<LoadedPartition> {
    const [ck, flat, outbox] = await Promise.all([
      this.o.cmd.hget(this.k.checkpoints, String(partition)),
      this.o.cmd.hgetall(this.k.stateOf(partition)),
      this.o.cmd.lrange(this.k.outboxOf(partition), 0, -1),
    ])
    const states = new Map<string, ThingState>()
    const props: Array<[string, string, string]> = []
    for (const [field, json] of Object.entries(flat)) {
      const slash = field.indexOf(PROPERTY_SEP)
      if (slash >= 0) { props.push([field.slice(0, slash), field.slice(slash + 1), json]); continue }
      try {
        const s = JSON.parse(json) as ThingState
        // Written by a release that stored the whole state in one field: its properties are the base.
        s.properties ??= {}
        states.set(field, s)
      } catch { /* unreadable state: the thing starts from its defaults */ }
    }
    for (const [id, name, json] of props) {
      const s = states.get(id)
      if (s === undefined) continue
      if (FORBIDDEN_KEYS.has(name)) continue
      try {
        const f = readPropertyField(json)
        s.properties[name] = f.p
        // Format 2 writes the head only when more than seq changed: the newest seq may be in a property field.
        if (f.seq > s.seq) s.seq = f.seq
      } catch { /* unreadable: the default applies */ }
    }
    const batches: OutMessage[][] = []
    for (const b of outbox) {
      try { batches.push(decodeOutbox(b)) } catch { batches.push([]) }
    }
    return { checkpoint: ck ?? '', states, outbox: batches }
  }

  async commit (c: Commit): Promise<void> {
    const k = this.k
    const keys = [k.leases, k.checkpoints, k.stateOf(c.partition), k.outboxOf(c.partition), k.logOf(c.partition), k.alerts]
    const keyIndex = new Map<string, number>()
    const format = this.format
    // ARGV in one array, written in order (see lua/commit.lua); the counts
    // and the history age cap are filled in once known.
    const args: string[] = [
      String(c.partition), String(c.token), c.from, c.to,
      '', String(c.alerts.length), String(c.history.length), String(c.feedback.length),
      c.outbox.length > 0 ? encodeOutbox(c.outbox, format) : '', String(this.o.historyMax), '', '', entryWidth(format),
    ]
    // A thing's state is one field for everything but its properties, and one
    // field per property, written only when the property changed: a device
    // write touches one property, and rewriting all of them (and their
    // previous samples) was most of the bytes a commit sent.
    // Format 2: a property field carries the thing's seq as well, and the head
    // (rules, alerts, shadow: mostly unchanged by a device write) is written
    // only when one of them changed since it was last written, or when no
    // property field of the thing is (then it is what records the new seq).
    let removed: string[] | undefined
    let fieldPairs = 0
    for (const [id, s] of c.states) {
      const seqTail = format === 2 ? ',"seq":' + s.seq + '}' : ''
      const before = fieldPairs
      const written = c.written?.get(id)
      if (written === undefined || written === null) {
        for (const name in s.properties) { args.push(id + PROPERTY_SEP + name, propertyField(s.properties[name] as ThingState['properties'][string], seqTail)); fieldPairs++ }
      } else {
        for (const name of written) {
          const p = getOwn(s.properties, name)
          if (p !== undefined) { args.push(id + PROPERTY_SEP + name, propertyField(p, seqTail)); fieldPairs++ }
        }
      }
      if (format !== 2 || fieldPairs === before || !isHeadSaved(s)) {
        args.push(id, stateHead(s))
        fieldPairs++
        // Marked as the commit is built: if it fails, the owner drops every cached state of the partition.
        if (format === 2) markHeadSaved(s)
      }
      const gone = c.removed?.get(id)
      if (gone !== undefined) for (const name of gone) (removed ??= []).push(id + PROPERTY_SEP + name)
    }
    args[4] = String(fieldPairs)
    if (removed !== undefined) {
      for (const f of removed) args.push(f)
      args[11] = String(removed.length)
    } else {
      args[11] = '0'
    }
    for (const a of c.alerts) args.push(`${a.thingId}/${a.alert}`, JSON.stringify(a.record))
    let lastTs = 0
    for (const h of c.history) {
      args.push(keyNumber(keys, keyIndex, k.historyOf(h.thingId, h.property)), `${h.ts}-*`, JSON.stringify({ value: h.value, quality: h.quality }))
      if (h.ts > lastTs) lastTs = h.ts
    }
    for (const f of c.feedback) {
      args.push(keyNumber(keys, keyIndex, k.logOf(f.partition)))
      for (const v of entryFields(f.entry, format)) args.push(v)
    }
    args[10] = this.o.historyMaxAgeMs > 0 && lastTs > 0 ? String(Math.max(0, lastTs - this.o.historyMaxAgeMs)) : ''
    try {
      await this.s.commit(keys.length, keys, args)
    } catch (err) {
      const code = runtimeCodeOf(err)
      if (code !== undefined) throw new RuntimeError(code, (err as Error).message)
      throw err
    }
  }

  async ackOutbox (partition: number, token: number, batches: number): Promise<void> {
    try {
      await this.s.outboxAck(this.k.leases, this.k.outboxOf(partition), String(partition), String(token), String(batches))
    } catch (err) {
      if (runtimeCodeOf(err) === 'ENGINE_FENCED') throw new RuntimeError('ENGINE_FENCED')
      throw err
    }
  }

  async beat (brokerId: string, want: readonly number[], release: ReadonlyMap<number, number>): Promise<BeatResult> {
    const rel: string[] = []
    for (const [p, t] of release) rel.push(String(p), String(t))
    // Sent before the beat (which may take the cluster's first fencing token),
    // in the same write: see lua/format-2.lua.
    const [format, [flat, live]] = await Promise.all([
      this.s.format(this.k.format, this.k.fence, String(LATEST_FORMAT)),
      this.s.beat(this.k.leases, this.k.fence, this.k.alive, brokerId, String(this.o.leaseMs), String(want.length), ...want.map(String), ...rel),
    ])
    this.format = Math.min(Number(format), LATEST_FORMAT) >= 2 ? 2 : 1
    const owners = new Array<string | null>(this.o.partitions).fill(null)
    const held = new Map<number, number>()
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const p = Number(flat[i])
      if (!(p >= 0 && p < this.o.partitions)) continue
      owners[p] = flat[i + 1] as string
      if (flat[i + 1] === brokerId) held.set(p, Number(flat[i + 2]))
    }
    return { owners, held, live }
  }

  async releaseAll (brokerId: string, held: ReadonlyMap<number, number>): Promise<void> {
    if (held.size === 0) return
    await this.beat(brokerId, [], held)
    await this.o.cmd.zrem(this.k.alive, brokerId)
  }

  async getState (partition: number, thingId: string, properties: Iterable<string>): Promise<ThingState | undefined> {
    const names = [...properties]
    const [head, ...values] = await this.o.cmd.hmget(this.k.stateOf(partition), thingId, ...names.map((n) => thingId + PROPERTY_SEP + n))
    if (head === null || head === undefined) return undefined
    const s = JSON.parse(head) as ThingState
    s.properties ??= {}
    names.forEach((n, i) => {
      const v = values[i]
      if (v === null || v === undefined || FORBIDDEN_KEYS.has(n)) return
      const f = readPropertyField(v)
      s.properties[n] = f.p
      if (f.seq > s.seq) s.seq = f.seq
    })
    return s
  }

  async history (thingId: string, property: string, from: number, to: number, limit: number): Promise<HistoryPoint[]> {
    const items = await this.o.cmd.xrange(this.k.historyOf(thingId, property), String(Math.max(0, from)), Number.isFinite(to) ? String(to) : '+', 'COUNT', limit)
    return items.map(([id, fields]) => {
      const v = JSON.parse(fields[1] ?? 'null') as { value: unknown, quality?: string } | null
      const point: HistoryPoint = { ts: Number(id.slice(0, id.indexOf('-'))), value: v?.value ?? null }
      if (v?.quality !== undefined) point.quality = v.quality
      return point
    })
  }

  async alerts (): Promise<Array<{ thingId: string, alert: unknown }>> {
    const flat = await this.o.cmd.hgetall(this.k.alerts)
    return Object.entries(flat).map(([field, json]) => ({ thingId: field.slice(0, field.lastIndexOf('/')), alert: JSON.parse(json) as unknown }))
  }

  async defsVersion (): Promise<number> {
    return Number(await this.o.cmd.get(this.k.defsVersion) ?? 0)
  }

  async defsChanges (from: number, to: number): Promise<DefinitionChange[][]> {
    if (to < from) return []
    const versions: string[] = []
    for (let v = from; v <= to; v++) versions.push(String(v))
    const out: DefinitionChange[][] = []
    // Bounded chunks: a node far behind does not ask for everything at once.
    for (let i = 0; i < versions.length; i += 100) {
      const chunk = await this.o.cmd.hmget(this.k.defsLog, ...versions.slice(i, i + 100))
      for (const json of chunk) {
        if (json === null) throw new RuntimeError('ENGINE_STORE_FAILED', 'a definitions version is missing from the log')
        out.push(JSON.parse(json) as DefinitionChange[])
      }
    }
    return out
  }

  async defsPut (expected: number, changes: readonly DefinitionChange[], ids?: { expectedId: string, id: string }): Promise<boolean> {
    const args = [String(expected), JSON.stringify(changes)]
    if (ids !== undefined) args.push(ids.expectedId, ids.id)
    const [ok] = await this.s.defsPut(this.k.defsVersion, this.k.defsLog, ...args)
    return ok === 1
  }

  async defsHead (at: number): Promise<{ version: number, atId: string, headId: string }> {
    const [version, atId, headId] = await this.s.defsHead(this.k.defsVersion, this.k.defsLog, String(at))
    return { version: Number(version), atId, headId }
  }

  onReconnect (handler: () => void): void {
    this.reconnectHandlers.push(handler)
  }

  async defsMarkApplied (brokerId: string, version: number, id?: string): Promise<void> {
    if (id === undefined) await this.o.cmd.hset(this.k.defsApplied, brokerId, String(version))
    else await this.o.cmd.hset(this.k.defsApplied, brokerId, String(version), brokerId + APPLIED_ID_SUFFIX, id)
  }

  async defsApplied (): Promise<Map<string, number>> {
    return new Map([...(await this.defsAppliedWithIds())].map(([b, a]) => [b, a.version]))
  }

  async defsAppliedWithIds (): Promise<Map<string, { version: number, id?: string }>> {
    const flat = await this.o.cmd.hgetall(this.k.defsApplied)
    const out = new Map<string, { version: number, id?: string }>()
    for (const [b, v] of Object.entries(flat)) {
      if (b.endsWith(APPLIED_ID_SUFFIX)) continue
      const id = flat[b + APPLIED_ID_SUFFIX]
      out.set(b, id === undefined ? { version: Number(v) } : { version: Number(v), id })
    }
    return out
  }

  async notify (msg: { t: 'defs', version: number } | { t: 'applied', version: number, b: string }): Promise<void> {
    await this.o.cmd.publish(this.k.channel, JSON.stringify({ v: 1, ...msg }))
  }

  onNotice (handler: (msg: { t: string, version: number, b?: string }) => void): void {
    this.noticeHandlers.push(handler)
  }

  async close (): Promise<void> {
    this.noticeHandlers = []
    this.reconnectHandlers = []
    // The reader may sit in a blocking XREAD: disconnect instead of QUIT.
    this.o.reader.disconnect()
    await Promise.allSettled([this.o.sub.quit(), this.o.cmd.quit()])
  }
}
