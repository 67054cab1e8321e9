// The result of a run, built from the shards' reports. Pure. This object
// is what --json prints (version 1) and what the HTML report draws.

import type { LoadtestConfig } from './config.ts'
import type { ThingCreateResult } from './fleet-admin.ts'
import { EMPTY_LOSS, addLoss, type LossSummary } from './sequence.ts'
import type { ConnectReport, Outage, ShardReport } from './shard.ts'
import { LatencyHistogram, type PercentileSummary } from './stats.ts'

export interface TimelinePoint {
  /** Seconds since the run started. */
  readonly t: number
  readonly connected: number
  readonly sent: number
  readonly received: number
  readonly errors: number
  readonly connects: number
  readonly disconnects: number
  readonly p99Ms: number
}

export interface RunEvent {
  readonly t: number
  readonly label: string
}

export interface FailoverResult {
  readonly exec: string | null
  readonly execAtS: number | null
  readonly execExitCode: number | null
  readonly longestGapMs: number
  readonly longestGapAtS: number | null
  /** From the exec until the last disconnected client was back (and resubscribed); null if some never were. */
  readonly recoveryMs: number | null
  readonly clientsDisconnected: number
  readonly clientsStillDown: number
}

export interface LoadtestResult {
  readonly version: 1
  readonly scenario: string
  readonly startedAt: string
  readonly interrupted: boolean
  readonly settings: {
    readonly urls: readonly string[]
    readonly clients: number
    readonly subscribers: number
    readonly rate: number | null
    readonly qos: number
    readonly payloadSize: number
    readonly durationMs: number | null
    readonly count: number | null
    readonly workers: number
  }
  /** Publishing (conn: holding) time in ms. */
  readonly elapsedMs: number
  readonly connections: {
    readonly attempted: number
    readonly connected: number
    readonly failures: Record<string, number>
    readonly connectPerSec: number
    readonly connectTime: PercentileSummary
  }
  readonly messages: {
    readonly sent: number
    readonly acked: number
    readonly received: number
    readonly sentPerSec: number
    readonly receivedPerSec: number
    /** Sends the pacer skipped because publishers could not keep up. */
    readonly behind: number
  }
  readonly loss: LossSummary & { readonly injectedDrops: number; readonly checked: boolean }
  readonly latency: PercentileSummary
  readonly memory: { readonly source: string; readonly beforeBytes: number; readonly afterBytes: number; readonly perConnectionBytes: number } | null
  readonly failover: FailoverResult | null
  readonly fleet: { readonly things: number; readonly create: ThingCreateResult | null; readonly updates: number; readonly notifications: number } | null
  readonly errors: Record<string, number>
  readonly timeline: readonly TimelinePoint[]
  readonly events: readonly RunEvent[]
}

export interface BuildInput {
  readonly config: LoadtestConfig
  readonly startedAtMs: number
  readonly publishStartMs: number | null
  readonly publishEndMs: number | null
  readonly connectMs: number
  readonly interrupted: boolean
  readonly connects: readonly ConnectReport[]
  readonly reports: readonly ShardReport[]
  readonly timeline: readonly TimelinePoint[]
  readonly events: readonly RunEvent[]
  readonly memory: LoadtestResult['memory']
  readonly exec: { readonly atMs: number; readonly exitCode: number | null } | null
  readonly create: ThingCreateResult | null
}

export function buildResult(i: BuildInput): LoadtestResult {
  const c = i.config
  const sum = (f: (r: ShardReport) => number): number => i.reports.reduce((n, r) => n + f(r), 0)
  const failures: Record<string, number> = {}
  const connectTime = new LatencyHistogram()
  for (const r of i.connects) {
    for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v
    connectTime.add(LatencyHistogram.decode(r.connectTimes))
  }
  const latency = new LatencyHistogram()
  let loss = EMPTY_LOSS
  const errors: Record<string, number> = {}
  for (const r of i.reports) {
    latency.add(LatencyHistogram.decode(r.latency))
    loss = addLoss(loss, r.loss)
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v
  }
  const elapsedMs =
    i.publishStartMs === null ? 0 : Math.max(0, (i.publishEndMs ?? i.publishStartMs) - i.publishStartMs)
  const perSec = (n: number): number => (elapsedMs > 0 ? Math.round((n * 1000) / elapsedMs) : 0)
  const attempted = i.connects.reduce((n, r) => n + r.attempted, 0)
  const connected = i.connects.reduce((n, r) => n + r.connected, 0)
  const received = sum((r) => r.loss.received)
  const receives = c.scenario !== 'conn' && c.scenario !== 'pub' && c.scenario !== 'fleet'
  return {
    version: 1,
    scenario: c.scenario,
    startedAt: new Date(i.startedAtMs).toISOString(),
    interrupted: i.interrupted,
    settings: {
      urls: c.urls,
      clients: c.clients,
      subscribers: receives && c.scenario !== 'sub' ? c.subscribers : 0,
      rate: c.rate,
      qos: c.qos,
      payloadSize: c.payloadSize,
      durationMs: c.durationMs,
      count: c.count,
      workers: c.workers,
    },
    elapsedMs: Math.round(elapsedMs),
    connections: {
      attempted,
      connected,
      failures,
      connectPerSec: i.connectMs > 0 ? Math.round((connected * 1000) / i.connectMs) : 0,
      connectTime: connectTime.summary(),
    },
    messages: {
      sent: sum((r) => r.sent),
      acked: sum((r) => r.acked),
      received: c.scenario === 'fleet' ? sum((r) => r.notifications) : received,
      sentPerSec: perSec(sum((r) => r.sent)),
      receivedPerSec: perSec(c.scenario === 'fleet' ? sum((r) => r.notifications) : received),
      behind: sum((r) => r.behind),
    },
    loss: { ...loss, injectedDrops: sum((r) => r.dropped), checked: receives },
    latency: latency.summary(),
    memory: i.memory,
    failover: c.scenario === 'failover' || c.exec !== null ? failoverResult(i) : null,
    fleet:
      c.scenario === 'fleet'
        ? { things: c.clients, create: i.create, updates: sum((r) => r.sent), notifications: sum((r) => r.notifications) }
        : null,
    errors,
    timeline: i.timeline,
    events: i.events,
  }
}

function failoverResult(i: BuildInput): FailoverResult {
  let gap: ShardReport['maxGap'] = null
  for (const r of i.reports) if (r.maxGap !== null && (gap === null || r.maxGap.ms > gap.ms)) gap = r.maxGap
  const from = i.exec?.atMs ?? i.publishStartMs ?? i.startedAtMs
  const outages: Outage[] = i.reports.flatMap((r) => r.outages).filter((o) => o.downAtMs >= from - 1000)
  const down = new Set(outages.map((o) => o.clientId))
  const still = new Set(outages.filter((o) => o.upAtMs === null).map((o) => o.clientId))
  const lastUp = outages.reduce((m, o) => Math.max(m, o.upAtMs ?? 0), 0)
  return {
    exec: i.config.exec,
    execAtS: i.exec === null ? null : round3((i.exec.atMs - i.startedAtMs) / 1000),
    execExitCode: i.exec?.exitCode ?? null,
    longestGapMs: gap === null ? 0 : Math.round(gap.ms),
    longestGapAtS: gap === null ? null : round3((gap.atMs - i.startedAtMs) / 1000),
    recoveryMs: still.size > 0 ? null : down.size === 0 ? 0 : Math.round(lastUp - from),
    clientsDisconnected: down.size,
    clientsStillDown: still.size,
  }
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000
