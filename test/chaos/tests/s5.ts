// S5: connection exhaustion. 5,000 sockets that never send CONNECT must be
// closed at connectTimeout; then 500 connections/s from one address must hit
// the per-address cap; bystanders keep their latency; fds stay below 80%.
import { connect as tcpConnect, type Socket } from 'node:net'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { row, notRun, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { fdCountOf, hasOption, noIpCaps, startChaosNode, type ChaosNode } from '../cluster.ts'
import { startProbe } from '../probe.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }

function fdLimit (pid: number): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))
  return m ? Number(m[1]) : Infinity
}

async function idleSocket (node: ChaosNode): Promise<{ openedAt: number, closed: Promise<number>, socket: Socket } | null> {
  const socket = tcpConnect(node.port, node.host)
  socket.on('error', () => {})
  const ok = await new Promise<boolean>((resolve) => { socket.once('connect', () => resolve(true)); socket.once('error', () => resolve(false)) })
  if (!ok) return null
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
  socket.on('data', () => {})
  return { openedAt: Date.now(), closed, socket }
}

export const s5: ChaosTest = {
  id: 'S5',
  title: 'Resource exhaustion: connections',
  async run (ctx) {
    const idle = Math.round(ctx.num('CHAOS_S5_IDLE', 5000) * Math.min(1, ctx.scale * 2))
    const timeoutMs = 5000
    return withSimpleEnv({ nodes: 1, tag: 'S5', args: ['--connect-timeout-ms', String(timeoutMs), ...noIpCaps()] }, async ({ redis, cluster }) => {
      const node = cluster.nodes[0]
      const rows: Row[] = []
      const probe = await startProbe({ host: node.host, port: node.port }, 's5')
      const socks: Array<NonNullable<Awaited<ReturnType<typeof idleSocket>>>> = []
      let failed = 0
      let fdPeak = 0
      const fdTimer = setInterval(() => { fdPeak = Math.max(fdPeak, fdCountOf(node.pid())) }, 200)
      for (let i = 0; i < idle; i += 250) {
        const got = await Promise.all(Array.from({ length: Math.min(250, idle - i) }, () => idleSocket(node)))
        for (const g of got) if (g) socks.push(g); else failed++
      }
      const closes = await Promise.all(socks.map((x) => Promise.race([x.closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), timeoutMs + 10_000))]).then((at) => at - x.openedAt)))
      clearInterval(fdTimer)
      for (const x of socks) x.socket.destroy()
      const inWindow = closes.filter((d) => d >= timeoutMs - 1000 && d <= timeoutMs + 1000).length
      const sorted = [...closes].sort((a, b) => a - b)
      rows.push(row('S5', `${idle} idle sockets closed at connectTimeout (5 s) ± 1 s`, `${inWindow}/${socks.length} in window (${failed} could not open); min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms`, inWindow === idle))
      const limit = fdLimit(node.pid())
      rows.push(row('S5', 'fd usage < 80% of ulimit', `peak ${fdPeak} fds of ${limit} (${(100 * fdPeak / limit).toFixed(1)}%)`, fdPeak < 0.8 * limit))

      // Part 2: per-address cap on a node with the caps on (the first node has them off for part 1).
      if (!hasOption('--max-connections-per-ip')) {
        rows.push(notRun('S5', 'per-IP cap (200) enforced at 500 connections/s', 'node has no --max-connections-per-ip option'))
      } else {
        const capped = await startChaosNode({ redis: redis.url, nodeId: 's5-capped', args: ['--max-connections-per-ip', '200', '--connect-timeout-ms', String(timeoutMs)] })
        try {
          const held: Socket[] = []
          let accepted = 0
          let refused = 0
          const seconds = Math.max(2, Math.round(4 * Math.min(1, ctx.scale * 2)))
          for (let s = 0; s < seconds; s++) {
            const tick = Date.now()
            const res = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
              const sock = tcpConnect(capped.port, capped.host)
              sock.on('error', () => {})
              held.push(sock)
              const ok = await new Promise<boolean>((resolve) => {
                sock.once('connect', () => sock.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `s5-${s}-${i}`, keepalive: 60 })))
                sock.once('data', (d: Buffer) => resolve(d[0] === 0x20 && d[3] === 0))
                sock.once('close', () => resolve(false))
                setTimeout(() => resolve(false), 5000)
              })
              return ok
            }))
            accepted += res.filter(Boolean).length
            refused += res.filter((x) => !x).length
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1000 - (Date.now() - tick))))
          }
          const live = held.filter((x) => !x.destroyed && x.readyState === 'open').length
          for (const x of held) x.destroy()
          rows.push(row('S5', 'per-IP cap (200) enforced at 500 connections/s', `${seconds * 500} attempts: ${accepted} got CONNACK 0, ${refused} refused/closed; ${live} still open at the end`, accepted <= 200 && live <= 200))
          rows.push(row('S5', 'capped node survives', capped.alive() ? 'alive' : 'DEAD', capped.alive()))
        } finally {
          await capped.kill('SIGKILL')
        }
      }
      const p = await probe.stop()
      rows.push(row('S5', 'existing clients p99 < 100 ms', `bystander p99 ${p.latency.p99Ms} ms, ${p.received}/${p.sent}`, p.latency.p99Ms < 100 && p.received === p.sent && p.sent > 0))
      rows.push(row('S5', 'node alive', node.alive() && node.unexpectedExits() === 0 ? 'alive' : 'DEAD', node.alive()))
      return rows
    })
  },
}
