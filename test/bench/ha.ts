/**
 * `npm run bench:ha`, part 2 (BENCH_FAILOVER_RUNS, default 1, 0 skips it):
 * what a Redis primary SIGKILL costs under Sentinel, with and without WAIT,
 * on the topology of test/cluster/redis-ha.test.ts (primary, two replicas,
 * three Sentinels, three nodes): failover time, Redis write unavailability,
 * time until the nodes serve again, longest PUBACK gap, acknowledged
 * messages lost by the persistent and the clean subscriber, and R7 (retained
 * messages after a kill 50 ms after the last PUBACK).
 *
 * Part 1: what `--redis-wait-replicas 1` costs. One Redis primary
 * with one replica; a 2-node cluster on it, first with asynchronous
 * replication, then with every QoS1 PUBACK waiting for Redis WAIT 1; the two
 * alternate for BENCH_RUNS rounds so machine noise hits both. Measures QoS1
 * throughput (publishers on node1 with a bounded window of unacknowledged
 * messages) and publish→PUBACK latency (one publisher, one message at a
 * time, paced), with a persistent QoS1 subscriber on node2 so every message
 * is queued in Redis and crosses nodes. Prints a table with the ratios.
 * Every loop is bounded by count and by time.
 */
import hdr from 'hdr-histogram-js'
import mqtt, { type MqttClient } from 'mqtt'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { waitFor } from '../helpers/wait.ts'
import { runPrimaryKill, runRetainedKill } from '../helpers/sentinel.ts'
import { NO_LIMITS } from './brokers.ts'

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 20_000)
const PUBLISHERS = Number(process.env.BENCH_PUBLISHERS ?? 8)
const WINDOW = Number(process.env.BENCH_WINDOW ?? 32)
const LATENCY_MESSAGES = Number(process.env.BENCH_LATENCY_MESSAGES ?? 1000)
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 200)
const RUNS = Number(process.env.BENCH_RUNS ?? 2)
const FAILOVER_RUNS = Number(process.env.BENCH_FAILOVER_RUNS ?? 1)
const TIME_LIMIT_MS = 60_000
const PAYLOAD = Buffer.alloc(64, 'x')

interface Result { throughput: number, p50: number, p99: number, shortfalls: number }

function client (port: number, clientId: string, clean = true): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect({ host: '127.0.0.1', port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 })
    c.once('connect', () => resolve(c))
    c.once('error', reject)
  })
}

async function startPair (redis: TestRedis, mode: string, args: string[]): Promise<NodeProcess[]> {
  // A cluster name per mode: the two runs never see each other's keys.
  const common = ['--cluster', `bench-${mode}`, ...NO_LIMITS, '--allow-anonymous', 'true', ...args]
  const nodes = [await startNodeProcess({ redis: redis.url, nodeId: `${mode}1`, args: common }), await startNodeProcess({ redis: redis.url, nodeId: `${mode}2`, args: common })]
  await waitFor(async () => ((await nodes[0].health()).body.members as unknown[]).length === 2, 'two members', 30_000, 50)
  return nodes
}

async function measure (redis: TestRedis, mode: string, args: string[]): Promise<Result> {
  const nodes = await startPair(redis, mode, args)
  const clients: MqttClient[] = []
  try {
    const sub = await client(nodes[1].port, `ha-bench-sub-${mode}`, false)
    clients.push(sub)
    let received = 0
    sub.on('message', () => { received++ })
    await sub.subscribeAsync('bench/ha/#', { qos: 1 })
    const warm = await client(nodes[0].port, `ha-bench-warm-${mode}`)
    clients.push(warm)
    // Interest is announced asynchronously: wait until node1 routes to node2.
    await waitFor(async () => { const before = received; await warm.publishAsync('bench/ha/warm', PAYLOAD, { qos: 1 }); await waitFor(() => received > before, 'warm-up delivery', 500, 5); return true }, 'subscriber reachable', 20_000, 50)

    // Throughput: each publisher keeps up to WINDOW QoS1 messages unacknowledged.
    const pubs: MqttClient[] = []
    for (let i = 0; i < PUBLISHERS; i++) pubs.push(await client(nodes[0].port, `ha-bench-p${i}-${mode}`))
    clients.push(...pubs)
    const perPub = Math.ceil(MESSAGES / PUBLISHERS)
    const deadline = Date.now() + TIME_LIMIT_MS
    let acked = 0
    const started = performance.now()
    await Promise.all(pubs.map((p, i) => new Promise<void>((resolve) => {
      let sent = 0
      let inflight = 0
      let done = 0
      const pump = (): void => {
        while (inflight < WINDOW && sent < perPub && Date.now() < deadline) {
          sent++
          inflight++
          p.publish(`bench/ha/${i}`, PAYLOAD, { qos: 1 }, (err) => {
            inflight--
            done++
            if (!err) acked++
            if (done === sent && (sent >= perPub || Date.now() >= deadline)) resolve()
            else pump()
          })
        }
      }
      pump()
    })))
    const throughput = acked / ((performance.now() - started) / 1000)

    // Latency: one message at a time, paced, publish → PUBACK.
    const hist = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
    const lat = await client(nodes[0].port, `ha-bench-lat-${mode}`)
    clients.push(lat)
    const gap = 1000 / LATENCY_RATE
    const latDeadline = Date.now() + TIME_LIMIT_MS
    for (let k = 0; k < LATENCY_MESSAGES && Date.now() < latDeadline; k++) {
      const t0 = performance.now()
      await lat.publishAsync('bench/ha/lat', PAYLOAD, { qos: 1 })
      const us = Math.max(1, Math.round((performance.now() - t0) * 1000))
      hist.recordValue(us)
      const rest = gap - us / 1000
      if (rest > 0) await new Promise((r) => setTimeout(r, rest))
    }
    const metrics = await nodes[0].metrics()
    const shortfalls = Number(/^thingmesh_replication_shortfalls_total (\d+)/m.exec(metrics)?.[1] ?? 0)
    return { throughput, p50: hist.getValueAtPercentile(50) / 1000, p99: hist.getValueAtPercentile(99) / 1000, shortfalls }
  } finally {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2 }

async function main (): Promise<void> {
  const primary = await startRedis()
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)])
  try {
    const pc = primary.client()
    await waitFor(async () => /connected_slaves:1\b/.test(await pc.info('replication')) && /state=online/.test(await pc.info('replication')), 'replica online', 20_000, 50)
    const modes: Array<[string, string[]]> = [['async', []], ['wait1', ['--redis-wait-replicas', '1', '--redis-wait-timeout-ms', '500']]]
    const results = new Map<string, Result[]>(modes.map(([m]) => [m, []]))
    for (let run = 1; run <= RUNS; run++) {
      for (const [mode, args] of modes) {
        const r = await measure(primary, `${mode}r${run}`, args)
        results.get(mode)!.push(r)
        process.stdout.write(`run ${run} ${mode}: ${r.throughput.toFixed(0)} msg/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, WAIT shortfalls ${r.shortfalls}\n`)
      }
    }
    const sum = (m: string) => {
      const rs = results.get(m)!
      return { throughput: median(rs.map((r) => r.throughput)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) }
    }
    const a = sum('async')
    const w = sum('wait1')
    const row = (cells: string[]): string => '| ' + cells.join(' | ') + ' |'
    const lines = [
      `QoS1, 2 nodes, Redis primary + 1 replica, ${MESSAGES} messages x ${PUBLISHERS} publishers (window ${WINDOW}), latency ${LATENCY_MESSAGES} msgs at ${LATENCY_RATE}/s; medians of ${RUNS} run(s)`,
      row(['mode', 'QoS1 msg/s', 'PUBACK p50 ms', 'PUBACK p99 ms']),
      row(['---', '---:', '---:', '---:']),
      row(['async replication', a.throughput.toFixed(0), a.p50.toFixed(2), a.p99.toFixed(2)]),
      row(['--redis-wait-replicas 1', w.throughput.toFixed(0), w.p50.toFixed(2), w.p99.toFixed(2)]),
      row(['ratio wait/async', (w.throughput / a.throughput).toFixed(2), (w.p50 / a.p50).toFixed(2), (w.p99 / a.p99).toFixed(2)]),
    ]
    process.stdout.write('\n' + lines.join('\n') + '\n')
  } finally {
    await replica.stop()
    await primary.stop()
  }
  if (FAILOVER_RUNS > 0) await failovers()
}

async function failovers (): Promise<void> {
  const modes: Array<[string, string[]]> = [['async replication', []], ['--redis-wait-replicas 1', ['--redis-wait-replicas', '1', '--redis-wait-timeout-ms', '500']]]
  const row = (cells: Array<string | number>): string => '| ' + cells.join(' | ') + ' |'
  const lines = [
    `Redis primary SIGKILL under Sentinel (down-after 1000 ms), 3 nodes, 4 QoS1 publishers x 50 msg/s, ${FAILOVER_RUNS} run(s) per mode; times from the kill`,
    row(['mode', 'run', 'failover ms', 'Redis write gap ms', 'nodes serving ms', 'longest PUBACK gap ms', 'acked', 'lost persistent', 'lost clean', 'R7 retained after kill']),
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
  ]
  for (let run = 1; run <= FAILOVER_RUNS; run++) {
    for (const [mode, args] of modes) {
      const f = await runPrimaryKill({ nodeArgs: args })
      const r7 = await runRetainedKill({ nodeArgs: args, count: 1000, killAfterMs: 50 })
      const line = row([mode, run, f.failoverMs, f.redisWriteGapMs, f.serviceBackMs, f.pubackGapMs, f.acked, f.persistentLost, f.cleanLost, `${r7.retainedAfter}/${r7.published}`])
      process.stdout.write(line + '\n')
      lines.push(line)
    }
  }
  process.stdout.write('\n' + lines.join('\n') + '\n')
}

await main()
process.exit(0)
