/**
 * Diagnostic probe (not part of `npm run bench`): cross-node QoS 0 latency on a
 * freshly started cluster, per 1-second slice, after 6,000 warm-up messages at
 * 2,000/s. Prints p50/p99 over the run, then per slice the p99, the max, how
 * many messages took over 2 ms and the first few of them (arrival time mod
 * 100 s : ms), to see whether delays come in periodic bursts.
 *
 *   node --import tsx test/bench/latency-slices.ts
 *   SIZE=3 | EXTRA="--heartbeat-ms 5000 --dead-after-ms 15000" | IDLE=20000 (ms idle before the stream)
 *
 * Session 7 used it to find the per-second bursts and the two modes across
 * runs described in the README's "Still short" list.
 */
import { NO_LIMITS } from './brokers.ts'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { waitFor } from '../helpers/wait.ts'
import { connect } from '../helpers/mqtt.ts'
const SIZE = Number(process.env.SIZE ?? 2)
const redis = await startRedis()
const nodes: NodeProcess[] = []
for (let i = 0; i < SIZE; i++) nodes.push(await startNodeProcess({ redis: redis.url, nodeId: `b${i + 1}`, args: [...NO_LIMITS, '--allow-anonymous', 'true', ...(process.env.EXTRA ? process.env.EXTRA.split(' ') : [])] }))
await waitFor(async () => { for (const n of nodes) if (((await n.health()).body.members as unknown[]).length !== SIZE) return false; return true }, 'members', 15000, 50)
if (process.env.IDLE) await new Promise((resolve) => setTimeout(resolve, Number(process.env.IDLE)))
const sub = await connect(nodes[SIZE - 1].port, { clientId: 'ls' }); (sub.stream as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true)
await sub.subscribeAsync('bench/lat', { qos: 0 })
const pub = await connect(nodes[0].port, { clientId: 'lp' }); (pub.stream as unknown as { setNoDelay(v: boolean): void }).setNoDelay(true)
const RATE = 2000, WARM = 6000, N = WARM + RATE * 10
const lat: number[] = new Array(N).fill(NaN)
const at: number[] = new Array(N).fill(NaN)
let got = 0
const done = new Promise<void>((r) => sub.on('message', (_t, p) => { const i = p.readUInt32BE(8); lat[i] = performance.now() - p.readDoubleBE(0); at[i] = Date.now(); if (++got === N) r() }))
const start = performance.now()
for (let i = 0; i < N; i++) {
  const wait = start + (i * 1000) / RATE - performance.now()
  if (wait > 1) await new Promise((r) => setTimeout(r, wait))
  const buf = Buffer.alloc(64); buf.writeDoubleBE(performance.now(), 0); buf.writeUInt32BE(i, 8)
  pub.publish('bench/lat', buf, { qos: 0 })
}
await Promise.race([done, new Promise((r) => setTimeout(r, 5000))])
const all = lat.slice(WARM).filter((x) => !Number.isNaN(x)).sort((a, b) => a - b)
console.log(`SIZE=${SIZE} lost=${N - got} p50=${all[Math.floor(all.length * 0.5)].toFixed(3)} p99=${all[Math.floor(all.length * 0.99)].toFixed(3)} n=${all.length}`)
for (let s = WARM; s < N; s += RATE) {
  const raw = lat.slice(s, s + RATE)
  const xs = raw.filter((x) => !Number.isNaN(x))
  const slow = raw.map((x, j) => [x, s + j] as const).filter(([x]) => x > 2)
  const sorted = [...xs].sort((a, b) => a - b)
  console.log(`sec ${(s - WARM) / RATE} p99=${sorted[Math.floor(sorted.length * 0.99)].toFixed(2)} max=${sorted[sorted.length - 1].toFixed(1)} over2ms=${slow.length} bursts=${JSON.stringify(slow.slice(0, 8).map(([x, j]) => `${at[j] % 100000}:${x.toFixed(1)}`))}`)
}
await pub.endAsync(); await sub.endAsync()
await Promise.all(nodes.map((n) => n.kill('SIGKILL'))); await redis.stop(); process.exit(0)
