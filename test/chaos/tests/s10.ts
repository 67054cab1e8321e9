// S10: mutation fuzz against a node running inside the harness process, so a
// synchronous throw or an unhandled rejection anywhere in the parser, the
// wire guard or the broker's handlers is seen directly (a node process would
// just die). Inputs come from the shared seeded fuzzer (test/helpers/fuzz.ts);
// each session goes over loopback TCP, the path a real attacker uses. Judged:
// 0 throws, 0 crashes, no input whose handling blocked the event loop > 100 ms.
import { connect as tcpConnect } from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { loadavg } from 'node:os'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { makeFuzzer } from '../../helpers/fuzz.ts'
import { loadConfig } from '../../../broker/config.ts'
import { createLogger } from '../../../broker/log.ts'
import { startNode } from '../../../broker/node.ts'

/** One session; resolves with how it ended and how long the node took to answer. */
function session (port: number, bytes: Buffer): Promise<{ end: 'closed' | 'pingresp' | 'waiting', ms: number, bytes: Buffer }> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1')
    let t0 = 0
    let done = false
    const end = (how: 'closed' | 'pingresp' | 'waiting'): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      s.destroy()
      resolve({ end: how, ms: performance.now() - t0, bytes })
    }
    // A truncated packet leaves the node waiting for bytes: that is not slowness.
    const timer = setTimeout(() => end('waiting'), 250)
    s.on('error', () => end('closed'))
    s.on('close', () => end('closed'))
    s.on('data', (d: Buffer) => { if (d.includes(0xd0)) end('pingresp') })
    s.on('connect', () => { t0 = performance.now(); s.write(bytes) })
  })
}

export const s10: ChaosTest = {
  id: 'S10',
  title: 'Fuzzing',
  async run (ctx) {
    const durationMs = ctx.ms(60_000, 5000)
    const seed = ctx.num('CHAOS_S10_SEED', Date.now() % 1_000_000)
    const workers = ctx.num('CHAOS_S10_WORKERS', 8)
    const fuzzer = makeFuzzer(seed)
    const config = loadConfig({ cli: { host: '127.0.0.1', port: 0, httpPort: 0, logLevel: 'silent', allowAnonymous: true, maxPacketSize: 65_536, publishRatePerClient: 0, connectRatePerIp: 0, maxConnectionsPerIp: 0, nodeId: 's10' } })
    const thrown: string[] = []
    const onThrow = (err: unknown): void => { thrown.push(String((err as Error)?.stack ?? err).split('\n').slice(0, 3).join(' | ')) }
    process.on('uncaughtException', onThrow)
    process.on('unhandledRejection', onThrow)
    const node = await startNode(config, createLogger('silent'))
    const delay = monitorEventLoopDelay({ resolution: 10 })
    try {
      const rssBefore = process.memoryUsage.rss()
      const deadline = Date.now() + durationMs
      let sessions = 0
      const slow: Array<{ n: number, ms: number, bytes: Buffer }> = []
      const ends = { closed: 0, pingresp: 0, waiting: 0 }
      delay.enable()
      await Promise.all(Array.from({ length: workers }, async () => {
        while (Date.now() < deadline && thrown.length === 0) {
          const n = sessions++
          const r = await session(node.mqttPort, fuzzer.session(`fz-${n}`))
          ends[r.end]++
          if (r.end !== 'waiting' && r.ms > 100) slow.push({ n, ms: Math.round(r.ms), bytes: r.bytes })
        }
      }))
      delay.disable()
      // On a loaded machine a reply can be late because the process was not scheduled. Each late
      // input is replayed alone and judged by the CPU time the process spent on it, which waiting does not inflate.
      const confirmed: Array<{ n: number, cpuMs: number, hex: string }> = []
      for (const x of slow.slice(0, 300)) {
        const c0 = process.cpuUsage()
        await session(node.mqttPort, x.bytes)
        const c = process.cpuUsage(c0)
        const cpuMs = (c.user + c.system) / 1000
        if (cpuMs > 100) confirmed.push({ n: x.n, cpuMs: Math.round(cpuMs), hex: x.bytes.subarray(0, 64).toString('hex') })
      }
      const rssAfter = process.memoryUsage.rss()
      const blockedMax = delay.max / 1e6
      const load = loadavg()[0]
      const rows: Row[] = []
      rows.push(row('S10', `0 synchronous throws or unhandled rejections (${Math.round(durationMs / 1000)} s in-process, seed ${seed})`, `${thrown.length} in ${sessions} sessions${thrown.length ? `: ${thrown[0]}` : ''}`, thrown.length === 0, { thrown: thrown.slice(0, 5) }))
      const healthy = node.broker.closed !== true
      rows.push(row('S10', '0 crashes: the in-process node still serves', healthy ? `serving; ${ends.closed} sessions closed by the node, ${ends.pingresp} answered PINGRESP, ${ends.waiting} left waiting for bytes` : 'broker closed', healthy && sessions > 100))
      // Under load, scheduling alone can delay a reply; the event-loop delay tells a slow handler from a busy machine.
      rows.push(row('S10', '0 inputs > 100 ms', `${confirmed.length} inputs took > 100 ms of CPU when replayed alone (of ${Math.min(slow.length, 300)} replayed: the ${slow.length} of ${sessions} sessions answered after > 100 ms wall time, worst ${slow.length ? Math.max(...slow.map((x) => x.ms)) : 0} ms); event loop blocked at most ${blockedMax.toFixed(0)} ms (p99 ${(delay.percentile(99) / 1e6).toFixed(0)} ms); load average ${load.toFixed(1)}`, confirmed.length === 0 && slow.length <= 300, { confirmed: confirmed.slice(0, 20), slowWall: slow.slice(0, 20).map((x) => ({ n: x.n, ms: x.ms })) }))
      rows.push(info('S10', 'harness process RSS (node inside it)', `${(rssBefore / 1048576).toFixed(0)} → ${(rssAfter / 1048576).toFixed(0)} MB`))
      return rows
    } finally {
      process.off('uncaughtException', onThrow)
      process.off('unhandledRejection', onThrow)
      await node.stop()
    }
  },
}
