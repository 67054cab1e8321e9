/**
 * `npm run bench:scale`: retained messages at scale on a 1-node cluster
 * (issue 8). SCALE_RETAINED messages (default 1,000,000) are written straight
 * into Redis in thingmesh's own format (the MQTT path would take many
 * minutes), in groups `scale/<g>/<i>` of 1,000, plus 10 under `small/`. Then:
 *   - exact subscribe: SUBSCRIBE to one stored topic until its message, 20 times;
 *   - prefix wildcard `scale/<g>/#` (1,000 matches) and `small/#` (10 matches):
 *     the cost should follow the matches, not the 1,000,000;
 *   - a filter starting with a wildcard (`+/7/7007`) has to read every topic of the index (not the
 *     messages: only the matching ones are fetched): shown for contrast.
 * The node's CPU per subscription is given too (clock ticks: 10 ms resolution).
 */
import { cpus, loadavg } from 'node:os'
import { Redis } from 'ioredis'
import { cluster } from './brokers.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { encodeFrame } from '../../broker/cluster/codec.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { cpuSeconds } from './procstat.ts'

const N = Number(process.env.SCALE_RETAINED ?? 1_000_000)
const GROUP = 1000
const TIMEOUT_MS = 120_000
const payload = Buffer.alloc(64, 'x')
const frame = (topic: string): Buffer => encodeFrame('', { topic, payload, qos: 0, retain: true, dup: false, brokerId: '', brokerCounter: 0 })

const b = await cluster(1)
try {
  const redis = new Redis(b.redisPort!, '127.0.0.1')
  const keys = createKeys('thingmesh')
  const t0 = performance.now()
  for (let start = 0; start < N; start += 10_000) {
    const pipe = redis.pipeline()
    const h: Array<string | Buffer> = []
    const z: Array<string | number> = []
    for (let i = start; i < Math.min(N, start + 10_000); i++) {
      const topic = `scale/${Math.floor(i / GROUP)}/${i}`
      h.push(topic, frame(topic))
      z.push(0, topic)
    }
    pipe.hset(keys.retained, ...h)
    pipe.zadd(keys.retainedIndex, ...z)
    await pipe.exec()
  }
  for (let i = 0; i < 10; i++) await redis.multi().hset(keys.retained, `small/${i}`, frame(`small/${i}`)).zadd(keys.retainedIndex, 0, `small/${i}`).exec()
  const loadS = (performance.now() - t0) / 1000

  const sub = await connect(b.ports[0], { clientId: 'scale-sub' })
  const pid = b.pids[0]
  /** Time from SUBSCRIBE to the expected number of retained messages, and the node's CPU meanwhile (load-independent). */
  const timeTo = async (filter: string, expected: number): Promise<{ ms: number, got: number, cpuMs: number }> => {
    let got = 0
    let resolveDone = (): void => {}
    const done = new Promise<void>((resolve) => { resolveDone = resolve })
    const onMessage = (): void => { if (++got >= expected) resolveDone() }
    sub.on('message', onMessage)
    const cpu0 = cpuSeconds(pid)
    const start = performance.now()
    sub.subscribe(filter, { qos: 0 })
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS).unref())])
    const ms = performance.now() - start
    const cpuMs = (cpuSeconds(pid) - cpu0) * 1000
    sub.removeListener('message', onMessage)
    await sub.unsubscribeAsync(filter)
    return { ms, got, cpuMs }
  }
  const exact: Array<{ ms: number, cpuMs: number }> = []
  for (let k = 0; k < 20; k++) exact.push(await timeTo(`scale/${(k * 37) % Math.ceil(N / GROUP)}/${(k * 37) % Math.ceil(N / GROUP) * GROUP + k}`, 1))
  exact.sort((x, y) => x.ms - y.ms)
  const group = await timeTo('scale/7/#', Math.min(GROUP, N))
  const small = await timeTo('small/#', 10)
  const scan = await timeTo('+/7/7007', 1)
  await close(sub)
  await redis.quit()

  console.log(`\nthingmesh bench:scale — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`)
  console.log(`${N} retained messages on a 1-node cluster (written to Redis in ${loadS.toFixed(1)} s)\n`)
  console.log('| subscription | matches | time to receive them | node CPU |')
  console.log('|---|---|---|---|')
  console.log(`| exact topic (20 look-ups) | 1 | median ${exact[10].ms.toFixed(2)} ms, max ${exact[19].ms.toFixed(2)} ms | median ${exact[10].cpuMs.toFixed(0)} ms |`)
  console.log(`| scale/7/# (prefix range) | ${group.got} | ${group.ms.toFixed(1)} ms | ${group.cpuMs.toFixed(0)} ms |`)
  console.log(`| small/# (prefix range) | ${small.got} | ${small.ms.toFixed(1)} ms | ${small.cpuMs.toFixed(0)} ms |`)
  console.log(`| +/7/7007 (leading wildcard: every topic of the index read, only matches fetched) | ${scan.got} | ${scan.ms.toFixed(1)} ms | ${scan.cpuMs.toFixed(0)} ms |`)
} finally {
  await b.stop()
}
process.exit(0)
