// The coordinator: probe, connect, (create things), publish, sample once a
// second, run --exec, stop at duration/count/timeout/abort, drain, report.
// Every wait here is bounded by the run's deadline or the drain timeout.

import { spawn, type ChildProcess } from 'node:child_process'
import type { LoadtestConfig } from './config.ts'
import { probeBrokers } from './connection.ts'
import { memoryProbe } from './broker-memory.ts'
import { adminTopicThingCreator, createFailure, type ThingCreateResult, type ThingCreator } from './fleet-admin.ts'
import { nowUs } from './payload.ts'
import { assignShards, buildClients, expectedFor } from './plan.ts'
import { buildResult, type LoadtestResult, type RunEvent, type TimelinePoint } from './result.ts'
import { localShard, workerShard, type ShardHandle } from './shard-handle.ts'
import type { ConnectReport, ShardReport } from './shard.ts'
import { addCounters, emptyCounters } from './stats.ts'

export interface RunHooks {
  /** Aborting stops the run early; the result is still built and returned. */
  readonly signal?: AbortSignal
  /** Called once a second with the latest point (the CLI prints the live line). */
  readonly onSample?: (p: TimelinePoint) => void
  /** Called for each timeline event ('connected', 'publishing', 'exec: ...'). */
  readonly onEvent?: (e: RunEvent) => void
  /** fleet: replaces the $admin/things/put step. */
  readonly thingCreator?: ThingCreator
}

const nowMs = (): number => nowUs() / 1000

export async function runLoadtest(config: LoadtestConfig, hooks: RunHooks = {}): Promise<LoadtestResult> {
  const signal = hooks.signal
  const startedAtMs = nowMs()
  const deadline = startedAtMs + config.timeoutMs
  const events: RunEvent[] = []
  const timeline: TimelinePoint[] = []
  const at = (ms: number): number => Math.round(ms - startedAtMs) / 1000
  const event = (label: string): void => {
    const e = { t: at(nowMs()), label }
    events.push(e)
    hooks.onEvent?.(e)
  }

  const clients = buildClients(config)
  await probeBrokers(config, [...new Set(clients.map((c) => c.url))])

  const plans = assignShards(config, clients)
  const shards: ShardHandle[] = plans.map((p) => (config.workers > 1 ? workerShard(config, p) : localShard(config, p)))
  const memory = memoryProbe(config.pid, config.metricsUrl)
  let memBefore: number | null = null
  let child: ChildProcess | null = null
  let sampler: NodeJS.Timeout | null = null

  try {
    memBefore = memory ? await memory.read() : null

    // Sampling runs from the first connection so the report shows the ramp.
    const sample = async (): Promise<void> => {
      const samples = await Promise.all(shards.map((s) => s.sample()))
      const c = emptyCounters()
      for (const s of samples) addCounters(c, s.counters)
      const point: TimelinePoint = {
        t: at(nowMs()),
        connected: samples.reduce((n, s) => n + s.connected, 0),
        sent: c.sent,
        received: c.received,
        errors: c.errors,
        connects: c.connects,
        disconnects: c.disconnects,
        // Exact per worker; over several workers the highest is shown.
        p99Ms: samples.reduce((m, s) => Math.max(m, s.p99Ms), 0),
      }
      timeline.push(point)
      hooks.onSample?.(point)
    }
    let sampling = Promise.resolve()
    sampler = setInterval(() => {
      sampling = sampling.then(sample).catch(() => {})
    }, 1000)

    event('connecting')
    const connectStart = nowMs()
    const connects = await raceStop(Promise.all(shards.map((s) => s.connect())), signal, deadline)
    // Stopped while connecting: report how far it got.
    const connectReports: ConnectReport[] = connects ?? (await Promise.all(shards.map((s) => s.connectReport())))
    // Measured inside the shards so worker start-up is not counted as connect time.
    const connectMs = connects === null ? nowMs() - connectStart : Math.max(0, ...connects.map((c) => c.durationMs))
    event('connected')

    let create: ThingCreateResult | null = null
    if (config.scenario === 'fleet' && config.create && connects !== null) {
      const ids = clients.filter((c) => c.role === 'device').map((c) => c.thingId!)
      event('creating things')
      create = await (hooks.thingCreator ?? adminTopicThingCreator)(config, ids)
      const err = createFailure(create, ids.length)
      if (err) throw err
      event('things created')
    }

    let publishStartMs: number | null = null
    let exec: { atMs: number; exitCode: number | null } | null = null
    let interrupted = signal?.aborted === true || connects === null
    if (!interrupted) {
      publishStartMs = nowMs()
      await Promise.all(shards.map((s) => s.startPublishing()))
      event(config.scenario === 'conn' ? 'holding' : config.scenario === 'sub' ? 'receiving' : 'publishing')
      let execTimer: NodeJS.Timeout | null = null
      if (config.exec !== null && config.atMs !== null) {
        execTimer = setTimeout(() => {
          exec = { atMs: nowMs(), exitCode: null }
          event(`exec: ${config.exec}`)
          child = spawn('/bin/sh', ['-c', config.exec!], { stdio: 'ignore' })
          const record = exec
          child.on('exit', (code, sig) => {
            record.exitCode = code ?? (sig ? 128 : null)
          })
          child.on('error', () => {
            record.exitCode = 127
          })
        }, config.atMs)
      }
      const end = Math.min(deadline, config.durationMs !== null ? publishStartMs + config.durationMs : Infinity)
      const counted = config.count !== null ? Promise.all(shards.map((s) => s.whenDone())) : null
      const finished = await raceStop(counted ?? new Promise<never>(() => {}), signal, end)
      if (execTimer) clearTimeout(execTimer)
      interrupted = finished === null && signal?.aborted === true
    }

    const lastSeqParts = await Promise.all(shards.map((s) => s.stopPublishing()))
    const publishEndMs = nowMs()
    if (publishStartMs !== null) event(interrupted ? 'interrupted' : 'stopped publishing')
    const memAfter = memory ? await memory.read() : null
    const lastSeq = Object.assign({}, ...lastSeqParts) as Record<string, number>
    const expected = config.scenario === 'sub' || config.scenario === 'pub' ? null : expectedFor(clients, lastSeq)
    // An interrupted run still waits briefly so what is in flight is not counted as lost.
    const drainMs = Math.max(0, Math.min(interrupted ? Math.min(config.drainMs, 1000) : config.drainMs, deadline - nowMs()))
    await Promise.all(shards.map((s) => s.drain(expected, drainMs)))
    clearInterval(sampler)
    sampler = null
    await sampling
    const reports: ShardReport[] = await Promise.all(shards.map((s) => s.report()))
    const connected = connectReports.reduce((n, r) => n + r.connected, 0)
    return buildResult({
      config,
      startedAtMs,
      publishStartMs,
      publishEndMs,
      connectMs,
      interrupted,
      connects: connectReports,
      reports,
      timeline,
      events,
      memory:
        memory && memBefore !== null && memAfter !== null
          ? {
              source: memory.source,
              beforeBytes: memBefore,
              afterBytes: memAfter,
              perConnectionBytes: connected > 0 ? Math.round((memAfter - memBefore) / connected) : 0,
            }
          : null,
      exec,
      create,
    })
  } finally {
    if (sampler) clearInterval(sampler)
    const c = child as ChildProcess | null
    if (c !== null && c.exitCode === null && c.pid !== undefined) c.kill('SIGTERM')
    await Promise.all(shards.map((s) => s.close().catch(() => {})))
  }
}

/** Resolves with p's value, or null once the signal aborts or the deadline (epoch ms) passes. */
function raceStop<T>(p: Promise<T>, signal: AbortSignal | undefined, deadlineMs: number): Promise<T | null> {
  if (signal?.aborted) return Promise.resolve(null)
  return new Promise<T | null>((resolve, reject) => {
    const timer = setTimeout(() => done(null), Math.max(0, deadlineMs - nowMs()))
    const onAbort = (): void => done(null)
    signal?.addEventListener('abort', onAbort, { once: true })
    function done(v: T | null): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      resolve(v)
    }
    p.then(done, (err: unknown) => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      reject(err)
    })
  })
}
