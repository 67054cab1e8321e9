/**
 * The engine's in-process cost per update, without MQTT, Redis or the
 * network: decoding log entries, `processBatch`, the commit's serialisation
 * (RedisStore.commit against a stub connection that only keeps the
 * arguments) and rendering the outbox for publishing. Same shape as
 * `npm run bench:engine` (100,000 things x 10 number properties, 3 rules,
 * 64 partitions, about 1000 entries per round), so the figure is the
 * engine's own share of the node CPU the full bench reports.
 *
 *   node --import tsx test/bench/engine-process.ts
 *   BENCH_THINGS, BENCH_UPDATES, BENCH_ROUNDS (repeat the timed part) size it;
 *   run with --cpu-prof to see where the time goes.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { loadavg } from 'node:os'
import { validateModule, partitionOf, type Definitions } from '../../engine/index.ts'
import { processBatch, renderState, type CachedState } from '../../engine/runtime/batch.ts'
import { decodeEntry, encodeEntry, type LogEntry } from '../../engine/runtime/entries.ts'
import { RedisStore } from '../../engine/runtime/redis-store.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { benchModule } from './engine-module.ts'
import { num } from './options.ts'

const THINGS = num('things', 'BENCH_THINGS', 100_000)
const UPDATES = num('updates', 'BENCH_UPDATES', 100_000)
const ROUNDS = num('rounds', 'BENCH_ROUNDS', 3)
const PARTITIONS = 64
const PER_ROUND = 1000
const out = (s: string): void => { process.stdout.write(s + '\n') }

const v = validateModule(benchModule(THINGS))
if (!v.ok) throw new Error(JSON.stringify(v.problems))
const defs: Definitions = v.definitions

// A stub connection: RedisStore.commit builds its script arguments exactly as
// for Redis; the stub counts their bytes and resolves.
let argBytes = 0
const noop = (): void => {}
const stub = {
  status: 'ready',
  on: noop,
  commit: async (...args: unknown[]): Promise<number> => {
    for (const a of args.flat()) argBytes += typeof a === 'string' ? a.length : 0
    return 1
  },
}
const store = new RedisStore({
  cmd: stub as never, reader: stub as never, sub: stub as never,
  keys: createKeys('bench').engine, partitions: PARTITIONS, backlogMax: 1e6, historyMax: 10_000, historyMaxAgeMs: 7 * 86400_000, leaseMs: 2000,
})

const caches: Array<Map<string, CachedState>> = Array.from({ length: PARTITIONS }, () => new Map())
const seqs = new Array<number>(PARTITIONS).fill(0)
let now = 1_700_000_000_000
let published = 0
let publishedBytes = 0

/** XREAD gives field/value lists; this is what the runtime decodes. */
function flatOf (thing: number, prop: number, value: number): { p: number, id: string, flat: string[] } {
  const t = `s${thing}`
  const p = partitionOf(t, PARTITIONS)
  const id = `${now}-${seqs[p] = (seqs[p] ?? 0) + 1}`
  return { p, id, flat: encodeEntry({ t, k: 'w', p: `p${prop}`, v: String(value), n: now, o: 'dev-1', d: 0 }) }
}

async function round (items: Array<{ p: number, id: string, flat: string[] }>): Promise<void> {
  const byPart = new Map<number, LogEntry[]>()
  for (const it of items) {
    const e = decodeEntry(it.id, it.flat)
    if (e === undefined) throw new Error('undecodable')
    let l = byPart.get(it.p)
    if (l === undefined) { l = []; byPart.set(it.p, l) }
    l.push(e)
  }
  for (const [p, entries] of byPart) {
    const r = processBatch({ partition: p, defs, partitions: PARTITIONS, cache: caches[p]! }, entries)
    await store.commit({ partition: p, token: 1, from: '', to: entries[entries.length - 1]!.id, states: r.states, written: r.written, removed: r.removed, history: r.history, alerts: r.alerts, outbox: r.outbox, feedback: r.feedback })
    for (const m of r.outbox) {
      const o = renderState(m, (id) => r.states.get(id), r.statePayloads)
      if (o === undefined) continue
      // What the engine bridge hands to aedes.
      publishedBytes += Buffer.from(o.payload).length
      published++
    }
  }
}

let k = 0
async function run (n: number, gen: (k: number) => { thing: number, prop: number, value: number }): Promise<void> {
  for (let i = 0; i < n; i += PER_ROUND) {
    now += 1
    const items = []
    for (let j = i; j < Math.min(n, i + PER_ROUND); j++) {
      const u = gen(k++)
      items.push(flatOf(u.thing, u.prop, u.value))
    }
    await round(items)
  }
}

// Warm-up: every thing written once (as the full bench does).
await run(THINGS, (i) => ({ thing: i % THINGS, prop: 9, value: 1 }))

let gcMs = 0
let scavenges = 0
// Scavenges x the young generation's size approximate the bytes allocated
// (run with --max-semi-space-size / --min-semi-space-size fixed to compare).
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration
    if ((e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++
  }
})
obs.observe({ entryTypes: ['gc'] })
let seq = 0
const update = (): { thing: number, prop: number, value: number } => {
  const s = seq++
  return { thing: s % THINGS, prop: Math.floor(s / THINGS) % 10, value: (s * 7919) % 2000 }
}
// BENCH_HEAP_PROF=<file>: a sampling profile of everything allocated in the
// timed rounds (collected objects included), for chrome devtools.
const HEAP_PROF = process.env.BENCH_HEAP_PROF
const session = HEAP_PROF === undefined ? undefined : new Session()
const post = (method: string, params?: object): Promise<unknown> => new Promise((resolve, reject) => {
  session!.post(method, params, (err, res) => { if (err) reject(err); else resolve(res) })
})
if (session !== undefined) {
  session.connect()
  await post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
}
for (let r = 0; r < ROUNDS; r++) {
  gcMs = 0
  scavenges = 0
  argBytes = 0
  published = 0
  publishedBytes = 0
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await run(UPDATES, update)
  const wall = performance.now() - t0
  const c = process.cpuUsage(c0)
  // GC entries are delivered on a later turn.
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const cpuUs = (c.user + c.system) / UPDATES
  // Live heap (after a full collection) when run with --expose-gc: what the 100,000 states hold.
  const g = (globalThis as { gc?: () => void }).gc
  if (g !== undefined) g()
  out(`round ${r + 1}: ${UPDATES} updates over ${THINGS} things: ${cpuUs.toFixed(1)} us CPU per update (${(wall * 1000 / UPDATES).toFixed(1)} us wall), ` +
    `GC ${(gcMs * 1000 / UPDATES).toFixed(1)} us per update, ${scavenges} scavenges; commit args ${(argBytes / UPDATES).toFixed(0)} B, ` +
    `${(published / UPDATES).toFixed(2)} messages (${(publishedBytes / UPDATES).toFixed(0)} B) published per update; ` +
    `heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB; load average ${loadavg()[0]!.toFixed(2)}`)
}
obs.disconnect()
if (session !== undefined) {
  const { profile } = await post('HeapProfiler.stopSampling') as { profile: unknown }
  writeFileSync(HEAP_PROF!, JSON.stringify(profile))
}
process.exit(0)
