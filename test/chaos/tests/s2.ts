// S2: a packet that declares the largest remaining length (268,435,455) and
// then streams data, before CONNECT and after it, from 50 attackers at once.
// The node must close each after at most its size limit, without buffering.
import { connect as tcpConnect } from 'node:net'
import { createRequire } from 'node:module'
import { row, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { noIpCaps, rssOf, type ChaosNode } from '../cluster.ts'
import { startProbe } from '../probe.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }

const MAX_LEN = Buffer.from([0xff, 0xff, 0xff, 0x7f]) // 268,435,455
const CHUNK = Buffer.alloc(16 * 1024, 0x61)

interface Attack { bytesWritten: number, closed: boolean, closedAfterMs: number }

/** Writes header then 16 KiB chunks (waiting for drain) until the node closes, or `capBytes`/`maxMs`. */
async function attack (node: ChaosNode, postConnect: boolean, capBytes: number, maxMs: number): Promise<Attack> {
  const s = tcpConnect(node.port, node.host)
  s.on('error', () => {})
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  let closed = false
  s.once('close', () => { closed = true })
  s.on('data', () => {})
  if (postConnect) {
    s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `big-${Math.random().toString(36).slice(2)}`, keepalive: 60 }))
    await new Promise<void>((resolve) => s.once('data', () => resolve()))
  }
  const start = Date.now()
  let written = 0
  const header = Buffer.concat([Buffer.from([postConnect ? 0x30 : 0x10]), MAX_LEN, postConnect ? Buffer.from([0, 1, 0x74]) : Buffer.alloc(0)])
  s.write(header)
  written += header.length
  while (!closed && written < capBytes && Date.now() - start < maxMs) {
    const ok = s.write(CHUNK)
    written += CHUNK.length
    if (!ok) await new Promise<void>((resolve) => { s.once('drain', resolve); s.once('close', resolve); setTimeout(resolve, 1000) })
    else await new Promise((resolve) => setImmediate(resolve))
  }
  // Let a close already on its way arrive.
  if (!closed) await new Promise<void>((resolve) => { s.once('close', () => resolve()); setTimeout(resolve, 1000) })
  const result = { bytesWritten: written - s.writableLength, closed, closedAfterMs: Date.now() - start }
  s.destroy()
  return result
}

export const s2: ChaosTest = {
  id: 'S2',
  title: 'Huge remaining length',
  async run (ctx) {
    const attackers = ctx.num('CHAOS_S2_ATTACKERS', 50)
    const cap = 64 * 1024 * 1024
    return withSimpleEnv({ nodes: 1, tag: 'S2', args: noIpCaps() }, async ({ cluster }) => {
      const node = cluster.nodes[0]
      const help = { pre: 8192, post: 1_048_576 } // defaults of --max-connect-packet-size and --max-packet-size
      const probe = await startProbe({ host: node.host, port: node.port }, 's2')
      const rows: Row[] = []
      for (const post of [false, true]) {
        const label = post ? 'PUBLISH after CONNECT' : 'CONNECT before auth'
        const limit = post ? help.post : help.pre
        const one = await attack(node, post, cap, 10_000)
        const before = rssOf(node.pid())
        let peak = before
        const sampler = setInterval(() => { peak = Math.max(peak, rssOf(node.pid())) }, 50)
        const many = await Promise.all(Array.from({ length: attackers }, () => attack(node, post, cap, 10_000)))
        clearInterval(sampler)
        peak = Math.max(peak, rssOf(node.pid()))
        const growthMb = (peak - before) / 2 ** 20
        const open = many.filter((a) => !a.closed).length + (one.closed ? 0 : 1)
        // Bytes written count what the kernel accepted, socket buffers on both sides included (MBs on
        // loopback), so they only bound from above what the node read. The node's side is judged by
        // closing promptly and by RSS: a node that buffered the body would grow by it.
        const worst = Math.max(one.bytesWritten, ...many.map((a) => a.bytesWritten))
        const slowest = Math.max(one.closedAfterMs, ...many.map((a) => a.closedAfterMs))
        rows.push(row('S2', `${label}: closed before reading past the limit (${limit} B)`, `single attacker: ${one.closed ? 'closed' : 'NOT closed'} after ${one.closedAfterMs} ms; ${attackers} attackers: ${attackers - many.filter((a) => !a.closed).length} closed, slowest ${slowest} ms; ≤ ${(worst / 1024).toFixed(0)} KiB accepted by the kernel (upper bound, includes socket buffers)`, open === 0 && slowest <= 2000, { one, worst, slowest }))
        rows.push(row('S2', `${label}: RSS growth < 5 MB per attacker`, `+${growthMb.toFixed(1)} MB for ${attackers} attackers (${(growthMb / attackers).toFixed(2)} MB each)`, growthMb / attackers < 5))
      }
      const p = await probe.stop()
      rows.push(row('S2', 'node alive, bystander unaffected (p99 < 100 ms)', `${node.alive() ? 'alive' : 'DEAD'}; bystander p99 ${p.latency.p99Ms} ms, ${p.received}/${p.sent}`, node.alive() && p.latency.p99Ms < 100 && p.received === p.sent))
      return rows
    })
  },
}
