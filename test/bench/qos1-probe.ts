/**
 * QoS1 probe (issue 8): the bench's qos1 scenario (10 publishers x 10 QoS1
 * in flight to one QoS1 wildcard subscriber on the last node), with the CPU
 * each broker process used per message, for A/B comparisons of commits.
 *
 *   node --import tsx test/bench/qos1-probe.ts [root ...]
 *
 * Each root is a checkout (a git worktree) whose test/bench/brokers.ts
 * starts the brokers, so commits are compared in one run, alternated pair by
 * pair (A, B, A, B, ...): a noisy minute hits both. No root = this checkout.
 * PROBE_BROKERS (standalone,cluster2,aedes), PROBE_RUNS (3), PROBE_MESSAGES
 * (20000), PROBE_WARMUP (4000: sent first on each fresh broker, not measured).
 * A cluster's Redis is measured too (its CPU per message, printed apart
 * from the nodes': the bus's replay-log script runs there).
 */
import { loadavg } from 'node:os'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { cpuSeconds } from './procstat.ts'
import { qos1Stream } from './qos1-scenario.ts'
import type { BrokerUnderTest } from './brokers.ts'

const here = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const roots = process.argv.slice(2).map((r) => resolve(r))
if (roots.length === 0) roots.push(here)
const BROKER_KEYS = (process.env.PROBE_BROKERS ?? 'standalone,cluster2,aedes').split(',').filter(Boolean)
const RUNS = Number(process.env.PROBE_RUNS ?? 3)
const MESSAGES = Number(process.env.PROBE_MESSAGES ?? 20_000)
const WARMUP = Number(process.env.PROBE_WARMUP ?? 4000)
const TIMEOUT_MS = 60_000
const PAYLOAD = Buffer.alloc(64, 'x')

function qos1 (b: BrokerUnderTest, messages: number, tag: string): Promise<{ rate: number, received: number }> {
  return qos1Stream(b, { messages, timeoutMs: TIMEOUT_MS, clientPrefix: `probe-q1-${tag}`, payload: PAYLOAD })
}

/** The pid of the Redis server behind a cluster broker (INFO server). */
async function redisPid (port: number | undefined): Promise<number | null> {
  if (port === undefined) return null
  const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true })
  try {
    await r.connect()
    return Number(/process_id:(\d+)/.exec(await r.info('server'))?.[1] ?? NaN) || null
  } finally { r.disconnect() }
}

const rows: Array<{ root: string, broker: string, rate: number, usPerMsg: number, perNode: number[], redisUs: number }> = []
console.log(`load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
for (let run = 0; run < RUNS; run++) {
  for (const key of BROKER_KEYS) {
    for (const root of roots) {
      const { BROKERS } = await import(`${root}/test/bench/brokers.ts`) as typeof import('./brokers.ts')
      const b = (await BROKERS[key]())!
      try {
        if (WARMUP > 0) await qos1(b, WARMUP, 'warm')
        const rpid = await redisPid(b.redisPort)
        const cpu0 = b.pids.map(cpuSeconds)
        const redis0 = rpid === null ? 0 : cpuSeconds(rpid)
        const r = await qos1(b, MESSAGES, 'run')
        const perNode = b.pids.map((pid, i) => (cpuSeconds(pid) - cpu0[i]) / r.received * 1e6)
        const redisUs = rpid === null ? 0 : (cpuSeconds(rpid) - redis0) / r.received * 1e6
        const usPerMsg = perNode.reduce((a, x) => a + x, 0)
        rows.push({ root, broker: key, rate: r.rate, usPerMsg, perNode, redisUs })
        console.log(`run ${run + 1} ${key.padEnd(10)} ${root.padEnd(28)} ${r.rate.toFixed(0).padStart(6)} msg/s  node CPU ${usPerMsg.toFixed(1)} us/msg [${perNode.map((x) => x.toFixed(1)).join(', ')}]${rpid === null ? '' : `  Redis ${redisUs.toFixed(1)} us/msg`}${r.received < MESSAGES ? `  LOST ${MESSAGES - r.received}` : ''}  load ${loadavg()[0].toFixed(2)}`)
      } finally {
        await b.stop()
      }
    }
  }
}
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
console.log('\nmedians')
for (const key of BROKER_KEYS) {
  for (const root of roots) {
    const rs = rows.filter((r) => r.root === root && r.broker === key)
    console.log(`${key.padEnd(10)} ${root.padEnd(28)} ${median(rs.map((r) => r.rate)).toFixed(0).padStart(6)} msg/s  ${median(rs.map((r) => r.usPerMsg)).toFixed(1)} us/msg nodes  ${median(rs.map((r) => r.redisUs)).toFixed(1)} us/msg Redis`)
  }
}
process.exit(0)
