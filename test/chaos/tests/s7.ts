// S7: keepalive abuse. A requested keepalive above the cap is refused or
// capped; silent clients are closed within 1.5 × the keepalive in force.
// The cap is set low (CHAOS_S7_CAP, 4 s) so the test runs in seconds; the
// rule checked is the same as for the 300 s default.
import { connect as tcpConnect } from 'node:net'
import { createRequire } from 'node:module'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { noIpCaps, type ChaosNode } from '../cluster.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }

/** CONNECTs with `keepalive` then stays silent. Returns the CONNACK code and when the node closed the socket. */
async function silent (node: ChaosNode, clientId: string, keepalive: number, waitMs: number): Promise<{ connack: number | null, closedAfterMs: number | null }> {
  const s = tcpConnect(node.port, node.host)
  s.on('error', () => {})
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  const closed = new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())))
  let connack: number | null = null
  s.on('data', (d: Buffer) => { if (d[0] === 0x20) connack = d[3] })
  s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive }))
  const start = Date.now()
  const at = await Promise.race([closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), waitMs))])
  s.destroy()
  return { connack, closedAfterMs: at === null ? null : at - start }
}

export const s7: ChaosTest = {
  id: 'S7',
  title: 'Keepalive abuse',
  async run (ctx) {
    const cap = ctx.num('CHAOS_S7_CAP', 4)
    const n = ctx.num('CHAOS_S7_CLIENTS', 50)
    return withSimpleEnv({ nodes: 1, tag: 'S7', args: ['--keepalive-limit', String(cap), ...noIpCaps()] }, async ({ cluster }) => {
      const node = cluster.nodes[0]
      const rows: Row[] = []
      const huge = await Promise.all(Array.from({ length: n }, (_, i) => silent(node, `s7-huge-${i}`, 65535, cap * 1500 + 3000)))
      const hugeOk = huge.filter((r) => (r.connack !== null && r.connack !== 0) || (r.closedAfterMs !== null && r.closedAfterMs <= cap * 1500 + 500)).length
      rows.push(row('S7', `keepalive 65535 capped by keepaliveLimit (${cap} s): refused, or closed ≤ 1.5 × cap`, `${hugeOk}/${n}: CONNACK codes ${[...new Set(huge.map((r) => r.connack))].join(',')}; closed after ≤ ${Math.max(...huge.map((r) => r.closedAfterMs ?? Infinity))} ms`, hugeOk === n))
      const within = await Promise.all(Array.from({ length: n }, (_, i) => silent(node, `s7-cap-${i}`, cap, cap * 1500 + 3000)))
      const ok = within.filter((r) => r.connack === 0 && r.closedAfterMs !== null && r.closedAfterMs <= cap * 1500 + 500).length
      const worst = Math.max(...within.map((r) => r.closedAfterMs ?? Infinity))
      rows.push(row('S7', `silent sockets (keepalive ${cap} s) closed ≤ 1.5 × cap (${cap * 1.5} s, +0.5 s timer slack)`, `${ok}/${n} closed; worst ${Number.isFinite(worst) ? worst + ' ms' : 'not closed'}`, ok === n))
      const zero = await silent(node, 's7-zero', 0, cap * 1500 + 1000)
      rows.push(info('S7', 'keepalive 0 (no keepalive) with a cap in force', zero.connack !== 0 ? `refused (CONNACK ${zero.connack})` : zero.closedAfterMs !== null ? `accepted, closed after ${zero.closedAfterMs} ms` : `accepted and still open after ${cap * 1.5 + 1} s (MQTT allows 0 = off; a silent client then stays until TCP notices)`))
      return rows
    })
  },
}
