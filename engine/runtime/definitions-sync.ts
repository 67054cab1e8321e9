// Cluster-wide definitions: an ordered log of change batches in the store,
// version = position in the log (like EMQX's cluster RPC log). Every node
// replays the log in order, records the version it runs, and says so on the
// engine channel; a writer appends with compare-and-set on the version and
// then waits for the live nodes to confirm.
//
// Notices are only hints. Pub/sub keeps nothing while a link is down, and a
// Sentinel failover with asynchronous replication can hand over a primary
// that lacks the newest versions: each version carries a write id, and a
// node re-reads the log head (version + ids) after every reconnect and every
// `resyncMs`. Behind -> it catches up; Redis behind, or a version number now
// naming another write -> it reloads Redis's definitions whole and says so
// (ENGINE_DEFINITIONS_LOST), instead of refusing every later write.

import { randomBytes } from 'node:crypto'
import { Definitions, EngineError, type DefinitionChange } from '../index.ts'
import type { Logger } from '../../broker/log.ts'
import type { RolloutReport } from './api.ts'
import type { EngineStore } from './store.ts'

export interface DefinitionsSyncOptions {
  store: EngineStore
  brokerId: string
  log: Logger
  /** Broker ids of the live nodes whose confirmation a rollout waits for. */
  liveNodes: () => string[]
  rolloutTimeoutMs: number
  /** Called after every version change, with the previous snapshot. */
  onChange: (defs: Definitions, previous: Definitions) => void
  /** A tool (the import CLI), not a node: it never claims to run a version. */
  observer?: boolean
  /** How often the log head is compared with this node's version, notices or not (0 = never). */
  resyncMs?: number
}

/** Default resyncMs: one cheap script call per node; bounds how long a lost notice delays a node. */
export const DEFAULT_RESYNC_MS = 2000

interface Head { version: number, atId: string, headId: string }

const MAX_CAS_ATTEMPTS = 5

export class DefinitionsSync {
  defs: Definitions = Definitions.empty()
  /** Write id of `defs.version` in the store ('' = none: version 0, or written by a release without ids). */
  private id = ''
  private resyncTimer: NodeJS.Timeout | null = null
  private running: Promise<void> | null = null
  private again = false
  private waiters = new Set<() => void>()
  /** Serializes writers on this node, so local CAS retries do not fight each other. */
  private writeLock: Promise<unknown> = Promise.resolve()

  constructor (private readonly o: DefinitionsSyncOptions) {
    o.store.onNotice((msg) => {
      // Not only a higher version: after a failover a lower or equal number may be another history.
      if (msg.t === 'defs' && msg.version !== this.defs.version) void this.catchUp().catch(() => {})
      if (msg.t === 'applied') for (const w of this.waiters) w()
    })
    if (o.store.defsHead === undefined) return
    o.store.onReconnect?.(() => { this.resync('reconnect') })
    const every = o.resyncMs ?? DEFAULT_RESYNC_MS
    if (every > 0 && o.observer !== true) {
      this.resyncTimer = setInterval(() => { this.resync('timer') }, every)
      this.resyncTimer.unref()
    }
  }

  /** Stops the periodic check (the store is closed after this). */
  stop (): void {
    if (this.resyncTimer !== null) clearInterval(this.resyncTimer)
    this.resyncTimer = null
  }

  private resync (why: 'reconnect' | 'timer'): void {
    this.catchUp().catch((err: Error) => {
      // Redis away: the next reconnect or tick tries again.
      this.o.log.debug({ event: 'engine.definitions_resync_failed', why, err: err.message }, 'definitions re-check failed')
    })
  }

  /** Brings this node to the store's current version (single flight; a call during a run runs again after it). */
  catchUp (): Promise<void> {
    if (this.running !== null) { this.again = true; return this.running }
    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.catchUpOnce()
        } while (this.again)
      } finally { this.running = null }
    })()
    return this.running
  }

  private async catchUpOnce (): Promise<void> {
    const store = this.o.store
    if (store.defsHead === undefined) {
      const target = await store.defsVersion()
      if (target > this.defs.version) await this.advance(target, '')
    } else {
      const head = await store.defsHead(this.defs.version)
      if (head.version < this.defs.version || head.atId !== this.id) await this.reload(head)
      else if (head.version > this.defs.version) await this.advance(head.version, head.headId)
    }
    if (this.o.observer === true) return
    await store.defsMarkApplied(this.o.brokerId, this.defs.version, this.id)
    await store.notify({ t: 'applied', version: this.defs.version, b: this.o.brokerId })
  }

  /** Replays the versions after this node's up to `target`. */
  private async advance (target: number, targetId: string): Promise<void> {
    const batches = await this.o.store.defsChanges(this.defs.version + 1, target)
    let d = this.defs
    for (const b of batches) d = d.apply(b)
    this.install(d, targetId)
  }

  /**
   * The store does not hold this node's history any more (a failover lost
   * versions, maybe reused their numbers): Redis is the truth, so the whole
   * log is replayed from version 1 and what this node loses is reported.
   */
  private async reload (head: Head): Promise<void> {
    const had = this.defs
    const hadId = this.id
    const batches = await this.o.store.defsChanges(1, head.version)
    let d = Definitions.empty()
    for (const b of batches) d = d.apply(b)
    this.o.log.warn({
      event: 'engine.definitions_lost',
      code: 'ENGINE_DEFINITIONS_LOST',
      had: had.version,
      hadId,
      now: head.version,
      nowId: head.headId,
      changed: changedIds(had, d),
    }, `definitions version ${had.version} this node ran is not in Redis any more (failover?); reloaded version ${head.version} from Redis: the changes listed in 'changed' were lost and must be made again`)
    this.install(d, head.headId)
  }

  private install (d: Definitions, id: string): void {
    const previous = this.defs
    this.defs = d
    this.id = id
    this.o.log.info({ event: 'engine.definitions_applied', version: d.version }, 'definitions version applied')
    this.o.onChange(d, previous)
  }

  /**
   * Appends `changes` as the next version. `validate` computes the new snapshot
   * from the current one (throwing EngineError with problems if invalid); it is
   * run again if another writer got in first.
   */
  change (changes: readonly DefinitionChange[], validate: (current: Definitions) => Definitions = (c) => c.apply(changes)): Promise<RolloutReport> {
    const run = async (): Promise<RolloutReport> => {
      for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
        await this.catchUp()
        const base = this.defs
        const baseId = this.id
        const next = validate(base)
        const id = randomBytes(8).toString('hex')
        // The CAS is on Redis's version and the write id of the version this
        // batch was validated against, in one script: never on this node's memory alone.
        if (await this.o.store.defsPut(base.version, changes, { expectedId: baseId, id })) {
          // Nobody wrote in between, so `next` is exactly what replaying the
          // log gives: install it instead of validating everything again.
          if (this.defs === base) this.install(next, id)
          else await this.catchUp()
          if (this.o.observer !== true) await this.o.store.defsMarkApplied(this.o.brokerId, this.defs.version, this.id)
          await this.o.store.notify({ t: 'defs', version: next.version })
          return await this.waitRollout(next.version, this.o.rolloutTimeoutMs, id)
        }
      }
      throw new EngineError('ENGINE_VERSION_CONFLICT', `definitions kept changing; gave up after ${MAX_CAS_ATTEMPTS} attempts`)
    }
    const p = this.writeLock.then(run, run)
    this.writeLock = p.catch(() => {})
    return p
  }

  /**
   * Waits until every live node runs `version` or the rollout timeout passes.
   * With `id` (the write id of `version`), a node that says it runs that
   * number with another id still runs a version a failover lost: not applied.
   */
  async waitRollout (version: number, timeoutMs = this.o.rolloutTimeoutMs, id?: string): Promise<RolloutReport> {
    const deadline = Date.now() + timeoutMs
    const store = this.o.store
    for (;;) {
      const applied = store.defsAppliedWithIds !== undefined
        ? await store.defsAppliedWithIds()
        : new Map([...(await store.defsApplied())].map(([b, v]) => [b, { version: v } as { version: number, id?: string }]))
      const live = [...new Set([...this.o.liveNodes(), ...(this.o.observer === true ? [] : [this.o.brokerId])])].sort()
      const runs = (b: string): boolean => {
        const a = applied.get(b)
        if (a === undefined || a.version < version) return false
        // No recorded id: a node of a release without write ids, counted by number.
        return a.version > version || id === undefined || a.id === undefined || a.id === id
      }
      const appliedBy = live.filter(runs)
      const missing = live.filter((b) => !runs(b))
      const left = deadline - Date.now()
      if (missing.length === 0 || left <= 0) return { version, appliedBy, missing }
      // Woken by an 'applied' notice, or polls again: a lost notice only delays.
      await new Promise<void>((resolve) => {
        const done = (): void => { clearTimeout(timer); this.waiters.delete(done); resolve() }
        const timer = setTimeout(done, Math.min(left, 100))
        this.waiters.add(done)
      })
    }
  }
}

/** Ids of the templates, things and rules that differ between two snapshots (for the lost-versions report). */
function changedIds (a: Definitions, b: Definitions): { templates: string[], things: string[], rules: string[] } {
  const diff = <T>(x: ReadonlyMap<string, T>, y: ReadonlyMap<string, T>): string[] =>
    [...new Set([...x.keys(), ...y.keys()])].filter((k) => JSON.stringify(x.get(k)) !== JSON.stringify(y.get(k))).sort()
  return { templates: diff(a.templates, b.templates), things: diff(a.things, b.things), rules: diff(a.rules, b.rules) }
}
