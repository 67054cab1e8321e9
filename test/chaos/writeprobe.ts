// A Redis writer beside the brokers: SET every `everyMs` through Sentinel,
// remembering which writes were acknowledged, so a failover's write
// unavailability and acknowledged-write loss can be measured directly.
import type { Redis } from 'ioredis'

export interface WriteProbeResult {
  acked: number
  failed: number
  /** Longest time without an acknowledged write that overlaps `aroundMs`. */
  unavailableMs: number
  /** Acknowledged writes missing afterwards. */
  lost: number
}

/**
 * `connect` makes the probe's Sentinel client. An ioredis Sentinel client can
 * stay stuck after a failover (ioredis "Connection is closed.",
 * redis/ioredis#1683; it failed CI's R2 once with "never recovered" while
 * Sentinel had a writable primary after 1.7 s), so a client that got no
 * acknowledgement for STUCK_MS is dropped and a new one made, as any
 * application would; its unanswered writes count as failed. `verifier` gives
 * a client for the check at the end: a fresh one on the current primary.
 */
const STUCK_MS = 3000

/**
 * With `confirm`, a write counts as acknowledged only once a Redis WAIT after
 * it saw `replicas` replicas within `timeoutMs` (what `--redis-wait-replicas`
 * does for the broker); an unconfirmed write counts as refused. Without it, a
 * SET's own reply is the acknowledgement: asynchronous replication, whose
 * loss on a primary kill is the replication lag at that moment.
 */
export interface ProbeConfirm { replicas: number, timeoutMs: number }

export function startWriteProbe (connect: () => Redis, prefix: string, everyMs = 10, maxMs = 300_000, verifier?: () => Promise<Redis>, confirm?: ProbeConfirm): { stop(aroundMs: number): Promise<WriteProbeResult> } {
  const ackedAt: Array<[number, number]> = []
  let failed = 0
  let i = 0
  let running = true
  let redis = connect()
  /** Writes in flight on the current client only; a replaced client's are written off. */
  let inflight = 0
  let generation = 0
  let lastProgress = Date.now()
  const started = Date.now()
  const timer = setInterval(() => {
    if (!running || Date.now() - started > maxMs) { clearInterval(timer); return }
    if (Date.now() - lastProgress > STUCK_MS) {
      redis.disconnect()
      failed += inflight
      inflight = 0
      generation++
      redis = connect()
      lastProgress = Date.now()
    }
    if (inflight > 50) return
    const n = ++i
    const gen = generation
    inflight++
    const client = redis
    const write = client.set(`${prefix}${n}`, String(n))
    const acked = confirm
      ? write.then(() => client.call('WAIT', confirm.replicas, confirm.timeoutMs)).then((seen) => {
        if (Number(seen) < confirm.replicas) throw new Error(`WAIT saw ${String(seen)} replicas`)
      })
      : write
    acked.then(() => { ackedAt.push([n, Date.now()]); lastProgress = Date.now() }, () => { if (gen === generation) failed++ }).finally(() => { if (gen === generation) inflight-- })
  }, everyMs)
  return {
    async stop (aroundMs) {
      running = false
      clearInterval(timer)
      const until = Date.now() + 5000
      while (inflight > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))
      const times = ackedAt.map(([, t]) => t).sort((a, b) => a - b)
      // The fault is the only thing that stops writes, so the longest gap after it is the unavailability.
      let gap = 0
      for (let k = 1; k < times.length; k++) if (times[k] >= aroundMs) gap = Math.max(gap, times[k] - Math.max(times[k - 1], aroundMs))
      const last = times.filter((t) => t <= aroundMs).pop()
      const firstAfter = times.find((t) => t > aroundMs)
      if (last !== undefined && firstAfter === undefined) gap = Infinity
      let lost = 0
      const ids = ackedAt.map(([n]) => n)
      const check = verifier ? await verifier() : redis
      for (let k = 0; k < ids.length; k += 500) {
        const chunk = ids.slice(k, k + 500)
        const vals = await check.mget(...chunk.map((n) => `${prefix}${n}`))
        lost += vals.filter((v) => v === null).length
      }
      return { acked: ackedAt.length, failed, unavailableMs: gap, lost }
    },
  }
}
