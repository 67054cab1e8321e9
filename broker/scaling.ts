import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'

/**
 * Load-based scaling advice [issue 7]. `recommend` is pure: it takes every
 * member's load as published in its membership record, the thresholds and
 * the previous state, and returns what an operator (or an autoscaler reading
 * $SYS/thingmesh/cluster/scaling or /metrics) should do. It never acts.
 *
 * Against flapping there are two guards:
 * - separate bands: scale-in needs every figure below its (lower) scale-in
 *   threshold, and the load spread over one node fewer must stay below the
 *   scale-out thresholds, so a scale-in cannot by itself trigger a scale-out;
 * - persistence: the advice changes only after the new raw verdict has held
 *   for `sustain` consecutive evaluations (one per heartbeat).
 */

export type ScalingAction = 'scale-out' | 'scale-in' | 'hold'

/** Stable reason codes; `detail` says the same in words with the figures. */
export type ScalingReason =
  | 'connections_high' | 'cpu_high' | 'event_loop_high'
  | 'underused'
  | 'within_band' | 'at_min_nodes' | 'survivors_would_overload'
  | 'settling' | 'no_load_data'

/** One member's load, as each node publishes it in its membership record. */
export interface NodeLoad {
  nodeId: string
  connections: number
  /** Process CPU time over the last interval, % of one core. */
  cpuPercent: number
  eventLoopP99Ms: number
  messagesInPerSec: number
  messagesOutPerSec: number
  rssBytes: number
}

export interface ScalingThresholds {
  scaleOutConnectionsPerNode: number
  scaleOutCpuPercent: number
  scaleOutEventLoopP99Ms: number
  scaleInConnectionsPerNode: number
  scaleInCpuPercent: number
  scaleInEventLoopP99Ms: number
  /** Never advise scale-in at or below this many nodes (at least 2). */
  minNodes: number
  /** Consecutive evaluations a new verdict must hold before the advice changes. */
  sustain: number
}

export interface ScalingFigures {
  nodes: number
  connectionsPerNode: number
  cpuPercentAvg: number
  cpuPercentMax: number
  eventLoopP99MsAvg: number
  eventLoopP99MsMax: number
  messagesInPerSec: number
  messagesOutPerSec: number
  /** Connections and CPU per node if one node were removed (nodes - 1 survivors). */
  connectionsPerSurvivor: number
  cpuPercentPerSurvivor: number
}

export interface ScalingState {
  action: ScalingAction
  /** The raw verdict waiting to become the advice, and for how many evaluations it has held. */
  pending: ScalingAction
  streak: number
}

export interface Recommendation {
  v: 1
  action: ScalingAction
  reason: ScalingReason
  detail: string
  figures: ScalingFigures
  /** What the latest evaluation alone says, and how long it has said it. */
  pending: { action: ScalingAction, reason: ScalingReason, streak: number, needed: number }
}

export const INITIAL_STATE: ScalingState = Object.freeze({ action: 'hold', pending: 'hold', streak: 0 })

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d
const avg = (xs: number[]): number => xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length
const max = (xs: number[]): number => xs.length === 0 ? 0 : Math.max(...xs)

export function figuresOf (loads: NodeLoad[]): ScalingFigures {
  const n = loads.length
  const conns = avg(loads.map((l) => l.connections))
  const cpu = avg(loads.map((l) => l.cpuPercent))
  const survivors = Math.max(1, n - 1)
  return {
    nodes: n,
    connectionsPerNode: round(conns),
    cpuPercentAvg: round(cpu),
    cpuPercentMax: round(max(loads.map((l) => l.cpuPercent))),
    eventLoopP99MsAvg: round(avg(loads.map((l) => l.eventLoopP99Ms))),
    eventLoopP99MsMax: round(max(loads.map((l) => l.eventLoopP99Ms))),
    messagesInPerSec: round(loads.reduce((s, l) => s + l.messagesInPerSec, 0)),
    messagesOutPerSec: round(loads.reduce((s, l) => s + l.messagesOutPerSec, 0)),
    connectionsPerSurvivor: round(conns * n / survivors),
    cpuPercentPerSurvivor: round(cpu * n / survivors),
  }
}

/** The verdict of one evaluation, without persistence. */
export function evaluate (loads: NodeLoad[], t: ScalingThresholds): { action: ScalingAction, reason: ScalingReason, detail: string, figures: ScalingFigures } {
  const f = figuresOf(loads)
  if (loads.length === 0) return { action: 'hold', reason: 'no_load_data', detail: 'no member has published its load yet', figures: f }
  // Averages, not maxima: one hot node is a balancing problem, not a capacity one.
  if (f.connectionsPerNode > t.scaleOutConnectionsPerNode) {
    return { action: 'scale-out', reason: 'connections_high', detail: `${f.connectionsPerNode} connections per node > ${t.scaleOutConnectionsPerNode}`, figures: f }
  }
  if (f.cpuPercentAvg > t.scaleOutCpuPercent) {
    return { action: 'scale-out', reason: 'cpu_high', detail: `average CPU ${f.cpuPercentAvg}% > ${t.scaleOutCpuPercent}%`, figures: f }
  }
  if (f.eventLoopP99MsAvg > t.scaleOutEventLoopP99Ms) {
    return { action: 'scale-out', reason: 'event_loop_high', detail: `average event-loop delay p99 ${f.eventLoopP99MsAvg} ms > ${t.scaleOutEventLoopP99Ms} ms`, figures: f }
  }
  const underused = f.connectionsPerNode < t.scaleInConnectionsPerNode &&
    f.cpuPercentAvg < t.scaleInCpuPercent &&
    f.eventLoopP99MsMax < t.scaleInEventLoopP99Ms
  if (!underused) return { action: 'hold', reason: 'within_band', detail: 'load between the scale-in and scale-out thresholds', figures: f }
  const minNodes = Math.max(2, t.minNodes)
  if (f.nodes <= minNodes) {
    return { action: 'hold', reason: 'at_min_nodes', detail: `underused, but ${f.nodes} node(s) is the minimum (${minNodes})`, figures: f }
  }
  if (f.connectionsPerSurvivor > t.scaleOutConnectionsPerNode || f.cpuPercentPerSurvivor > t.scaleOutCpuPercent) {
    return { action: 'hold', reason: 'survivors_would_overload', detail: `underused, but ${f.nodes - 1} survivors would carry ${f.connectionsPerSurvivor} connections and ${f.cpuPercentPerSurvivor}% CPU each, over the scale-out thresholds`, figures: f }
  }
  return { action: 'scale-in', reason: 'underused', detail: `${f.connectionsPerNode} connections per node < ${t.scaleInConnectionsPerNode}, CPU ${f.cpuPercentAvg}% < ${t.scaleInCpuPercent}%, event-loop p99 max ${f.eventLoopP99MsMax} ms < ${t.scaleInEventLoopP99Ms} ms; ${f.nodes - 1} nodes would suffice`, figures: f }
}

/**
 * One evaluation with persistence: returns the advice and the state to pass
 * next time. Safety verdicts that forbid a scale-in (minimum nodes, survivors
 * overloaded) take effect at once; only changes towards an action wait.
 */
export function recommend (loads: NodeLoad[], t: ScalingThresholds, previous: ScalingState = INITIAL_STATE): { recommendation: Recommendation, state: ScalingState } {
  const now = evaluate(loads, t)
  const sustain = Math.max(1, t.sustain)
  const streak = now.action === previous.pending ? previous.streak + 1 : 1
  let action = previous.action
  if (now.action === previous.action || streak >= sustain) action = now.action
  // A scale-in the cluster can no longer afford is withdrawn without waiting.
  if (action === 'scale-in' && now.action !== 'scale-in' && (now.reason === 'at_min_nodes' || now.reason === 'survivors_would_overload' || now.action === 'scale-out')) {
    action = now.action
  }
  const settled = action === now.action
  return {
    recommendation: {
      v: 1,
      action,
      reason: settled ? now.reason : 'settling',
      detail: settled ? now.detail : `keeping ${action} until "${now.action}" (${now.reason}: ${now.detail}) has held ${sustain} evaluations (${streak} so far)`,
      figures: now.figures,
      pending: { action: now.action, reason: now.reason, streak, needed: sustain },
    },
    state: { action, pending: now.action, streak },
  }
}

/** Reads a member record's load, tolerating members of older releases that publish fewer figures. */
export function loadOf (nodeId: string, load: Record<string, number>): NodeLoad {
  const num = (k: string): number => Number.isFinite(load[k]) ? load[k] : 0
  return {
    nodeId,
    connections: num('connections'),
    cpuPercent: num('cpuPercent'),
    eventLoopP99Ms: num('eventLoopP99Ms'),
    messagesInPerSec: num('messagesInPerSec'),
    messagesOutPerSec: num('messagesOutPerSec'),
    rssBytes: num('rssBytes'),
  }
}

/**
 * This process's own figures over the last interval: CPU % (process.cpuUsage),
 * event-loop delay p99 (perf_hooks), message rates from running totals.
 * `sample()` closes an interval; `current()` is what the last one measured.
 */
export class LoadSampler {
  private readonly delay: IntervalHistogram
  private lastAt = performance.now()
  private lastCpu = process.cpuUsage()
  private lastTotals: { in: number, out: number } | null = null
  private figures = { cpuPercent: 0, eventLoopP99Ms: 0, messagesInPerSec: 0, messagesOutPerSec: 0 }

  constructor (private readonly totals: () => Promise<{ in: number, out: number }>) {
    this.delay = monitorEventLoopDelay({ resolution: 10 })
    this.delay.enable()
  }

  async sample (): Promise<void> {
    const totals = await this.totals()
    const now = performance.now()
    const seconds = Math.max(0.001, (now - this.lastAt) / 1000)
    const cpu = process.cpuUsage(this.lastCpu)
    this.figures = {
      cpuPercent: round((cpu.user + cpu.system) / 1e6 / seconds * 100),
      eventLoopP99Ms: round(this.delay.percentile(99) / 1e6, 2),
      messagesInPerSec: this.lastTotals ? round(Math.max(0, totals.in - this.lastTotals.in) / seconds) : 0,
      messagesOutPerSec: this.lastTotals ? round(Math.max(0, totals.out - this.lastTotals.out) / seconds) : 0,
    }
    this.delay.reset()
    this.lastAt = now
    this.lastCpu = process.cpuUsage()
    this.lastTotals = totals
  }

  current (): Record<string, number> {
    return { ...this.figures }
  }

  stop (): void {
    this.delay.disable()
  }
}
