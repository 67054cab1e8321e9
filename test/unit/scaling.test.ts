import t from 'tap'
import { evaluate, INITIAL_STATE, loadOf, recommend, type NodeLoad, type ScalingState, type ScalingThresholds } from '../../broker/scaling.ts'

const T: ScalingThresholds = {
  scaleOutConnectionsPerNode: 10_000,
  scaleOutCpuPercent: 70,
  scaleOutEventLoopP99Ms: 100,
  scaleInConnectionsPerNode: 1000,
  scaleInCpuPercent: 15,
  scaleInEventLoopP99Ms: 20,
  minNodes: 2,
  sustain: 3,
}

const node = (i: number, o: Partial<NodeLoad> = {}): NodeLoad => ({
  nodeId: `n${i}`, connections: 5000, cpuPercent: 40, eventLoopP99Ms: 30, messagesInPerSec: 100, messagesOutPerSec: 200, rssBytes: 1e8, ...o,
})
const cluster = (n: number, o: Partial<NodeLoad> = {}): NodeLoad[] => Array.from({ length: n }, (_, i) => node(i + 1, o))

/** Feeds the same loads `times` times; returns every advice. */
function run (loads: NodeLoad[], times: number, state: ScalingState = INITIAL_STATE) {
  const out = []
  for (let i = 0; i < times; i++) {
    const r = recommend(loads, T, state)
    state = r.state
    out.push(r.recommendation)
  }
  return { advice: out, state }
}

t.test('each reason, on one evaluation', async (t) => {
  t.match(evaluate([], T), { action: 'hold', reason: 'no_load_data' })
  t.match(evaluate(cluster(3), T), { action: 'hold', reason: 'within_band' })
  t.match(evaluate(cluster(3, { connections: 12_000 }), T), { action: 'scale-out', reason: 'connections_high' })
  t.match(evaluate(cluster(3, { cpuPercent: 85 }), T), { action: 'scale-out', reason: 'cpu_high' })
  t.match(evaluate(cluster(3, { eventLoopP99Ms: 150 }), T), { action: 'scale-out', reason: 'event_loop_high' })
  t.match(evaluate(cluster(4, { connections: 100, cpuPercent: 2, eventLoopP99Ms: 5 }), T), { action: 'scale-in', reason: 'underused' })
  t.match(evaluate(cluster(2, { connections: 100, cpuPercent: 2, eventLoopP99Ms: 5 }), T), { action: 'hold', reason: 'at_min_nodes' })
})

t.test('averages, not one hot node, decide scale-out', async (t) => {
  const loads = [node(1, { cpuPercent: 95 }), node(2, { cpuPercent: 30 }), node(3, { cpuPercent: 30 })]
  const v = evaluate(loads, T)
  t.equal(v.action, 'hold')
  t.equal(v.figures.cpuPercentMax, 95)
  t.equal(v.figures.cpuPercentAvg, 51.7)
})

t.test('scale-in needs every figure low: one busy event loop blocks it', async (t) => {
  const loads = cluster(4, { connections: 100, cpuPercent: 2, eventLoopP99Ms: 5 })
  loads[2] = { ...loads[2], eventLoopP99Ms: 40 }
  t.match(evaluate(loads, T), { action: 'hold', reason: 'within_band' })
})

t.test('never below the minimum: 2 by default, and a configured 3 is honoured', async (t) => {
  const idle = { connections: 0, cpuPercent: 0, eventLoopP99Ms: 1 }
  t.equal(run(cluster(2, idle), 10).advice.at(-1)!.action, 'hold', 'never scale-in at 2 nodes')
  t.match(evaluate(cluster(3, idle), { ...T, minNodes: 3 }), { action: 'hold', reason: 'at_min_nodes' })
  t.match(evaluate(cluster(3, idle), { ...T, minNodes: 1 }), { action: 'scale-in' }, 'a minimum below 2 is read as 2, 3 nodes may shrink')
  t.match(evaluate(cluster(2, idle), { ...T, minNodes: 1 }), { action: 'hold', reason: 'at_min_nodes' }, 'a minimum below 2 is read as 2')
})

t.test('no scale-in that would push the survivors over a scale-out threshold', async (t) => {
  // Thresholds whose bands overlap badly: scale-in below 800 conns, scale-out above 1000.
  const tight = { ...T, scaleInConnectionsPerNode: 800, scaleOutConnectionsPerNode: 1000 }
  const loads = cluster(3, { connections: 700, cpuPercent: 5, eventLoopP99Ms: 5 })
  const v = evaluate(loads, tight)
  t.match(v, { action: 'hold', reason: 'survivors_would_overload' })
  t.equal(v.figures.connectionsPerSurvivor, 1050)
  // CPU projection too: 3 x 12% on 2 nodes is 18%, over a 16% scale-out threshold.
  t.match(evaluate(cluster(3, { connections: 10, cpuPercent: 12, eventLoopP99Ms: 5 }), { ...T, scaleInCpuPercent: 13, scaleOutCpuPercent: 16 }), { action: 'hold', reason: 'survivors_would_overload' })
})

t.test('hysteresis: a verdict must hold `sustain` evaluations before the advice changes', async (t) => {
  const hot = cluster(3, { cpuPercent: 90 })
  const { advice, state } = run(hot, 3)
  t.same(advice.map((a) => a.action), ['hold', 'hold', 'scale-out'])
  t.same(advice.map((a) => a.reason), ['settling', 'settling', 'cpu_high'])
  t.match(advice[0].pending, { action: 'scale-out', reason: 'cpu_high', streak: 1, needed: 3 })
  // Back in the band: scale-out stays advised for two more evaluations, then hold.
  const calm = run(cluster(3), 3, state)
  t.same(calm.advice.map((a) => a.action), ['scale-out', 'scale-out', 'hold'])
})

t.test('hysteresis: a load oscillating around a threshold does not flap the advice', async (t) => {
  let state = INITIAL_STATE
  const actions: string[] = []
  for (let i = 0; i < 40; i++) {
    // 9,900 and 10,100 connections per node in turn: each raw verdict flips every evaluation.
    const r = recommend(cluster(3, { connections: i % 2 === 0 ? 10_100 : 9_900 }), T, state)
    state = r.state
    actions.push(r.recommendation.action)
  }
  t.same([...new Set(actions)], ['hold'], 'never advised scale-out on a single-sample spike')
})

t.test('a scale-in advice is withdrawn at once when it stops being safe', async (t) => {
  const idle = cluster(3, { connections: 10, cpuPercent: 1, eventLoopP99Ms: 2 })
  const { advice, state } = run(idle, 3)
  t.equal(advice.at(-1)!.action, 'scale-in')
  // One node left: now 2 nodes, at the minimum.
  const r = recommend(idle.slice(0, 2), T, state)
  t.match(r.recommendation, { action: 'hold', reason: 'at_min_nodes' })
  // A load spike while scale-in is advised: scale-out without waiting.
  const spike = recommend(cluster(3, { cpuPercent: 95 }), T, state)
  t.match(spike.recommendation, { action: 'scale-out', reason: 'cpu_high' })
  // Merely leaving the scale-in band waits like any other change.
  const band = recommend(cluster(3), T, state)
  t.match(band.recommendation, { action: 'scale-in', reason: 'settling' })
})

t.test('sustain 1 follows every verdict', async (t) => {
  const r = recommend(cluster(3, { connections: 20_000 }), { ...T, sustain: 1 })
  t.match(r.recommendation, { action: 'scale-out', reason: 'connections_high' })
  t.match(r.recommendation.detail, /20000 connections per node > 10000/)
})

t.test('membership records from older releases (fewer figures) read as zeros', async (t) => {
  t.same(loadOf('old', { connections: 7, rssBytes: 9 }), { nodeId: 'old', connections: 7, cpuPercent: 0, eventLoopP99Ms: 0, messagesInPerSec: 0, messagesOutPerSec: 0, rssBytes: 9 })
  t.equal(loadOf('x', { connections: Number.NaN }).connections, 0)
})

t.test('figures: totals of rates, survivors projection', async (t) => {
  const f = evaluate(cluster(4), T).figures
  t.match(f, { nodes: 4, connectionsPerNode: 5000, messagesInPerSec: 400, messagesOutPerSec: 800, connectionsPerSurvivor: 6666.7, cpuPercentPerSurvivor: 53.3 })
})
