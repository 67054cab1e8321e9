// R10: scale out under load (a 4th node joins) and, when the CLI has a
// `drain` command, scale in by draining n1. Only the add-a-node part runs
// while `thingmesh drain` does not exist.
import { row, notRun, type ChaosTest, type Row } from '../report.ts'
import { Stream } from '../stream.ts'
import { withEnv, at } from '../env.ts'
import { BIN, noIpCaps, startChaosNode, type ChaosNode } from '../cluster.ts'
import { spawnSync } from 'node:child_process'
import { adminConnect, type Admin } from '../admin.ts'
import { EngineProbe, type EngineProbeReport } from '../engine-probe.ts'

const ADMIN_PASSWORD = 'chaos-admin-secret-1'

export const r10: ChaosTest = {
  id: 'R10',
  title: 'Scale out / in',
  async run (ctx) {
    const rate = ctx.num('CHAOS_R10_RATE', 400)
    const hasDrain = /\bdrain\b/.test(spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, '--help'], { encoding: 'utf8' }).stdout)
    return withEnv({ tag: 'R10', args: [...noIpCaps(), '--admin-password', ADMIN_PASSWORD] }, async ({ topo, cluster }) => {
      const [n1, n2, n3] = cluster.nodes
      const s = (x: ChaosNode) => ({ host: x.host, port: x.port })
      const stream = new Stream({
        name: 'r10', servers: cluster.servers(), publishers: 6, ratePerSec: rate,
        subscribers: [
          { name: 'clean-n2', cls: 'clean', servers: [s(n2)] },
          { name: 'persist-n3', cls: 'persistent', servers: [s(n3)] },
          { name: 'persist-n1', cls: 'persistent', servers: [s(n1), s(n2), s(n3)] },
        ],
      })
      let n4: ChaosNode | null = null
      // Engine: things with a rule each, written from n3, echoes read on n2; n1 will be drained.
      const probe = hasDrain ? new EngineProbe('r10', 16) : null
      let admin: Admin | null = null
      try {
        if (probe) {
          admin = await adminConnect(s(n2), 'admin', ADMIN_PASSWORD)
          await probe.setup(admin.call, 'n1', s(n3), s(n2))
          probe.start()
        }
        await stream.start()
        const t0 = Date.now()
        const done = stream.publishFor(ctx.ms(30_000, 25_000))
        await at(t0, ctx.ms(8000, 3000))
        const joinStart = Date.now()
        n4 = await startChaosNode({ redis: topo.url, nodeId: 'n4', args: noIpCaps() })
        cluster.nodes.push(n4)
        await cluster.waitMembers(4, 20_000)
        const joinMs = Date.now() - joinStart
        // New clients on n4 must see the stream at once.
        const late = new Stream({ name: 'r10', servers: [s(n4)], publishers: 0, ratePerSec: 1, subscribers: [{ name: 'on-n4', cls: 'clean', servers: [s(n4)] }] })
        await late.start()
        let drain: { code: number | null, ms: number, movedMs: number, onN1: number, exit: number | null, out: string, started: number } | null = null
        if (hasDrain) {
          await at(t0, ctx.ms(16_000, 6000))
          const onN1 = stream.publishersOn(n1.port)
          const started = Date.now()
          const r = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'drain', '--node-id', 'n1', '--redis', topo.url, '--spread-ms', '1000', '--timeout-ms', '20000'], { encoding: 'utf8', timeout: 30_000 })
          const ms = Date.now() - started
          const exit = await Promise.race([new Promise<number | null>((resolve) => { if (!n1.alive()) resolve(n1.proc.exitCode); else n1.proc.once('exit', (c) => resolve(c)) }), new Promise<null>((resolve) => setTimeout(() => resolve(null), 10_000))])
          let movedMs = 0
          for (const p of stream.pubs.filter((x) => onN1.includes(x.id))) {
            const first = p.acksByPort.find(([t, port]) => t > started && port !== n1.port)
            movedMs = Math.max(movedMs, first ? first[0] - started : Infinity)
          }
          await new Promise((resolve) => setTimeout(resolve, 3000)) // let moved publishers ack (bounded, diagnostic)
          movedMs = 0
          const diag: Record<string, unknown> = {}
          for (const p of stream.pubs.filter((x) => onN1.includes(x.id))) {
            const first = p.acksByPort.find(([t, port]) => t > started && port !== n1.port)
            movedMs = Math.max(movedMs, first ? first[0] - started : Infinity)
            diag[p.id] = { connected: p.client.connected, port: p.client.options.port, closesAfter: p.closes.filter((t) => t > started).map((t) => t - started), lastAck: p.acksByPort.at(-1)?.map((v, i) => i === 0 ? v - started : v) }
          }
          drain = { code: r.status, ms, movedMs, onN1: onN1.length, exit, out: (r.stdout + r.stderr).slice(-500) + JSON.stringify(diag), started }
          ctx.log(`R10: drain exit ${r.status} after ${ms} ms; n1 exit ${exit}; ${onN1.length} publishers moved within ${movedMs} ms`)
        }
        await done
        const engine: EngineProbeReport | null = probe && drain ? await probe.finish(drain.started - 1000, 15_000) : null
        const reports = await stream.finish(ctx.ms(15_000, 8000), [s(n2), s(n3)])
        const onN4 = late.subs[0].record.received
        await late.close()
        const rows: Row[] = []
        rows.push(row('R10', 'add a 4th node (and drain n1 when possible) under load: 0 acked lost', reports.map((r) => `${r.subscriber} ${r.lost}/${r.acked}`).join(', '), reports.every((r) => r.lost === 0), { reports }))
        rows.push(row('R10', 'new node joins and serves', `healthy and 4 members after ${joinMs} ms; a subscriber on n4 received ${onN4} messages of the running stream`, onN4 > 0))
        if (drain) {
          rows.push(row('R10', 'drain n1: clients moved ≤ 5 s', `${drain.onN1} publishers on n1, all acked elsewhere within ${Number.isFinite(drain.movedMs) ? drain.movedMs + ' ms' : 'never'}; drain command exit ${drain.code} after ${drain.ms} ms; n1 exit code ${drain.exit}`, drain.onN1 > 0 && drain.movedMs <= 5000 && drain.code === 0, { out: drain.out }))
          rows.push(row('R10', 'drain n1: 0 acked lost (same stream, all subscribers)', reports.map((r) => `${r.subscriber} ${r.lost}/${r.acked}`).join(', '), reports.every((r) => r.lost === 0)))
          if (engine) {
            rows.push(row('R10', 'engine rules owned by n1 re-owned ≤ 5 s', `${engine.ownedByDrained.length} of ${engine.things} things on n1's partitions (one rule each, written every 200 ms); longest time without a firing from 1 s before the drain: ${engine.worstGapMs} ms`, engine.ownedByDrained.length > 0 && engine.worstGapMs <= 5000))
            rows.push(row('R10', 'engine: 0 missed or repeated rule firings across the drain', `${engine.missed} missed, ${engine.repeated} repeated, of ${engine.writesAcked} acknowledged writes${engine.missed ? `; e.g. ${engine.missedSample.join(', ')}` : ''}`, engine.missed === 0 && engine.repeated === 0 && engine.writesAcked > 0))
          }
        } else {
          rows.push(notRun('R10', 'drain n1: clients moved ≤ 5 s, 0 acked lost', 'no `thingmesh drain` command'))
          rows.push(notRun('R10', 'engine rules owned by n1 re-owned ≤ 5 s', 'needs drain'))
        }
        return rows
      } finally {
        await probe?.close()
        await admin?.close()
        await stream.close()
      }
    })
  },
}
