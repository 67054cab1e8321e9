// What the engine runtime needs from durable storage. Two implementations:
// Redis (cluster; every multi-key change is one fenced Lua script) and memory
// (standalone node; same semantics, one process, nothing survives a restart).

import type { DefinitionChange, ThingState } from '../index.ts'
import type { HistoryPoint } from './api.ts'
import type { AlertOp, FeedbackEntry, HistoryOp, OutMessage } from './batch.ts'
import type { EntryFields, LogEntry } from './entries.ts'

export interface LoadedPartition {
  /** Id of the last applied entry ('' = nothing applied yet). */
  checkpoint: string
  states: Map<string, ThingState>
  /** Committed effect batches not yet published, oldest first. */
  outbox: OutMessage[][]
}

export interface Commit {
  partition: number
  token: number
  /** The checkpoint the batch was computed from: the commit fails if it moved. */
  from: string
  to: string
  states: ReadonlyMap<string, ThingState>
  /**
   * Per thing of `states`, the properties the batch replaced (null or
   * absent: all): a store may write only those (RedisStore keeps one field
   * per property).
   */
  written?: ReadonlyMap<string, ReadonlySet<string> | null>
  /** Per thing, properties to forget (no longer defined). */
  removed?: ReadonlyMap<string, readonly string[]>
  history: readonly HistoryOp[]
  alerts: readonly AlertOp[]
  outbox: readonly OutMessage[]
  feedback: readonly FeedbackEntry[]
}

export interface BeatResult {
  /** Lease holder per partition (null = free or expired). */
  owners: Array<string | null>
  /** Partitions this node holds after the beat, with their fencing tokens. */
  held: Map<number, number>
  /** Nodes whose engine beat is fresh: the ones partitions are spread over. */
  live: string[]
}

export interface EngineStore {
  readonly mode: 'cluster' | 'standalone'
  /** Durable append; resolves once the entry would survive this node's crash (nobody needs its id). */
  append(partition: number, entry: EntryFields): Promise<void>
  /** Entries after each given id, at most `count` per partition; waits up to `blockMs` for any (0: does not wait). */
  read(from: ReadonlyMap<number, string>, count: number, blockMs: number): Promise<Array<{ partition: number, entries: LogEntry[] }>>
  load(partition: number): Promise<LoadedPartition>
  /** Throws RuntimeError ENGINE_FENCED / ENGINE_CHECKPOINT_MOVED; nothing is written then. */
  commit(c: Commit): Promise<void>
  /** Removes the oldest `batches` outbox batches once published (fenced). */
  ackOutbox(partition: number, token: number, batches: number): Promise<void>
  /** Renews held leases, takes free ones among `want`, gives up `release`. */
  beat(brokerId: string, want: readonly number[], release: ReadonlyMap<number, number>): Promise<BeatResult>
  /** Gives up every lease this node holds (graceful stop). */
  releaseAll(brokerId: string, held: ReadonlyMap<number, number>): Promise<void>

  /** `properties`: the names the thing's definition has (a store may keep them apart). */
  getState(partition: number, thingId: string, properties: Iterable<string>): Promise<ThingState | undefined>
  history(thingId: string, property: string, from: number, to: number, limit: number): Promise<HistoryPoint[]>
  alerts(): Promise<Array<{ thingId: string, alert: unknown }>>

  /** Definitions log. */
  defsVersion(): Promise<number>
  /** Change batches for versions from..to (inclusive), in order. */
  defsChanges(from: number, to: number): Promise<DefinitionChange[][]>
  /**
   * Appends a batch as version expected + 1; false if the version moved
   * meanwhile (or, with `ids`, if version `expected` is not the write
   * `expectedId`). `ids.id` names the new version's write.
   */
  defsPut(expected: number, changes: readonly DefinitionChange[], ids?: { expectedId: string, id: string }): Promise<boolean>
  /**
   * The current version and the write ids ('' = none) of version `at` and of
   * the current version. A store without it has one history (no failover).
   */
  defsHead?(at: number): Promise<{ version: number, atId: string, headId: string }>
  /** Called when a link came back: notices sent meanwhile were lost. */
  onReconnect?(handler: () => void): void
  /** `id`: the write id of `version` this node runs (see defsHead). */
  defsMarkApplied(brokerId: string, version: number, id?: string): Promise<void>
  defsApplied(): Promise<Map<string, number>>
  /** Like defsApplied, with the write id each node recorded (none: a release without ids). */
  defsAppliedWithIds?(): Promise<Map<string, { version: number, id?: string }>>
  /** Tells every node a new version exists, and that `brokerId` applied one. */
  notify(msg: { t: 'defs', version: number } | { t: 'applied', version: number, b: string }): Promise<void>
  onNotice(handler: (msg: { t: string, version: number, b?: string }) => void): void

  close(): Promise<void>
}
