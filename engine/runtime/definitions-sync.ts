// Cluster-wide definitions: an ordered log of change batches in the store,
// version = position in the log (like EMQX's cluster RPC log). Every node
// replays the log in order, records the version it runs, and says so on the
// engine channel; a writer appends with compare-and-set on the version and
// then waits for the live nodes to confirm.

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
}

const MAX_CAS_ATTEMPTS = 5

export class DefinitionsSync {
  defs: Definitions = Definitions.empty()
  private running: Promise<void> | null = null
  private again = false
  private waiters = new Set<() => void>()
  /** Serializes writers on this node, so local CAS retries do not fight each other. */
  private writeLock: Promise<unknown> = Promise.resolve()

  constructor (private readonly o: DefinitionsSyncOptions) {
    o.store.onNotice((msg) => {
      if (msg.t === 'defs' && msg.version > this.defs.version) void this.catchUp().catch(() => {})
      if (msg.t === 'applied') for (const w of this.waiters) w()
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
    const target = await this.o.store.defsVersion()
    if (target > this.defs.version) {
      const batches = await this.o.store.defsChanges(this.defs.version + 1, target)
      let d = this.defs
      for (const b of batches) d = d.apply(b)
      this.install(d)
    }
    if (this.o.observer === true) return
    await this.o.store.defsMarkApplied(this.o.brokerId, this.defs.version)
    await this.o.store.notify({ t: 'applied', version: this.defs.version, b: this.o.brokerId })
  }

  private install (d: Definitions): void {
    const previous = this.defs
    this.defs = d
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
        const next = validate(base)
        if (await this.o.store.defsPut(base.version, changes)) {
          // Nobody wrote in between, so `next` is exactly what replaying the
          // log gives: install it instead of validating everything again.
          if (this.defs === base) this.install(next)
          else await this.catchUp()
          if (this.o.observer !== true) await this.o.store.defsMarkApplied(this.o.brokerId, this.defs.version)
          await this.o.store.notify({ t: 'defs', version: next.version })
          return await this.waitRollout(next.version)
        }
      }
      throw new EngineError('ENGINE_VERSION_CONFLICT', `definitions kept changing; gave up after ${MAX_CAS_ATTEMPTS} attempts`)
    }
    const p = this.writeLock.then(run, run)
    this.writeLock = p.catch(() => {})
    return p
  }

  /** Waits until every live node runs `version` or the rollout timeout passes. */
  async waitRollout (version: number, timeoutMs = this.o.rolloutTimeoutMs): Promise<RolloutReport> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const applied = await this.o.store.defsApplied()
      const live = [...new Set([...this.o.liveNodes(), ...(this.o.observer === true ? [] : [this.o.brokerId])])].sort()
      const appliedBy = live.filter((b) => (applied.get(b) ?? 0) >= version)
      const missing = live.filter((b) => (applied.get(b) ?? 0) < version)
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
