// S8: the WebSocket listener. A foreign Origin must get 403 before any MQTT
// byte; a message over --ws-max-payload (2 MiB) must close with 1009, also
// when a frame header announces 200 MiB (the body is never buffered); and
// the S1 malformed-packet corpus must hold over WebSocket too.
import { connect as tcpConnect } from 'node:net'
import { randomBytes } from 'node:crypto'
import { WebSocket } from 'ws'
import { row, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { noIpCaps, rssOf, type ChaosNode } from '../cluster.ts'
import { freePort } from '../../helpers/ports.ts'
import { corpus, runCaseWs, type CaseResult } from './s1.ts'

const MAX_PAYLOAD = 2 * 1024 * 1024

/** The HTTP status an upgrade gets (101 when it is accepted). */
function upgradeStatus (node: ChaosNode, wsPort: number, origin: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${node.host}:${wsPort}/mqtt`, 'mqtt', origin === undefined ? {} : { origin })
    ws.on('error', () => {})
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.once('open', () => { resolve(101); ws.terminate() })
    setTimeout(() => { resolve(0); ws.terminate() }, 5000)
  })
}

/** A WebSocket message of `size` bytes through the ws client: the close code the server sends. */
function oversizedMessage (node: ChaosNode, wsPort: number, size: number): Promise<number | null> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${node.host}:${wsPort}/mqtt`, 'mqtt')
    ws.on('error', () => {})
    const timer = setTimeout(() => { resolve(null); ws.terminate() }, 10_000)
    ws.once('close', (code) => { clearTimeout(timer); resolve(code) })
    ws.once('open', () => ws.send(Buffer.alloc(size, 0x30)))
  })
}

/**
 * By hand over TCP: the upgrade, then one masked binary frame whose header
 * announces `announced` bytes, followed by only 64 KiB of them. Resolves with
 * the close code of the server's close frame (or null), and how long it took.
 */
function hugeFrameHeader (node: ChaosNode, wsPort: number, announced: number): Promise<{ code: number | null, ms: number }> {
  return new Promise((resolve) => {
    const s = tcpConnect(wsPort, node.host)
    s.on('error', () => {})
    let buf = Buffer.alloc(0)
    let upgraded = false
    let t0 = 0
    const timer = setTimeout(() => { s.destroy(); resolve({ code: null, ms: Date.now() - t0 }) }, 10_000)
    s.once('connect', () => {
      s.write(['GET /mqtt HTTP/1.1', `Host: ${node.host}:${wsPort}`, 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: mqtt', '', ''].join('\r\n'))
    })
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!buf.subarray(0, end).toString().startsWith('HTTP/1.1 101')) { clearTimeout(timer); s.destroy(); resolve({ code: null, ms: 0 }); return }
        upgraded = true
        buf = buf.subarray(end + 4)
        // FIN + binary, MASK + 127 (64-bit length), the length, a mask key, then part of the body.
        const len = Buffer.alloc(8)
        len.writeBigUInt64BE(BigInt(announced))
        t0 = Date.now()
        s.write(Buffer.concat([Buffer.from([0x82, 0xff]), len, randomBytes(4), Buffer.alloc(64 * 1024)]))
      }
      // Server frames are unmasked: 0x88 close, length, then the 2-byte code.
      const at = buf.indexOf(0x88)
      if (upgraded && at >= 0 && buf.length >= at + 4) { clearTimeout(timer); s.destroy(); resolve({ code: buf.readUInt16BE(at + 2), ms: Date.now() - t0 }) }
    })
    s.once('close', () => { clearTimeout(timer); resolve({ code: null, ms: Date.now() - t0 }) })
  })
}

export const s8: ChaosTest = {
  id: 'S8',
  title: 'WebSocket hardening',
  async run (ctx) {
    const wsPort = await freePort()
    const allowed = 'https://app.example'
    return withSimpleEnv({ nodes: 1, tag: 'S8', args: ['--ws-port', String(wsPort), '--ws-origins', allowed, '--ws-max-payload', String(MAX_PAYLOAD), ...noIpCaps()] }, async ({ cluster }) => {
      const node = cluster.nodes[0]
      const rows: Row[] = []
      const foreign = await upgradeStatus(node, wsPort, 'https://evil.example')
      const listed = await upgradeStatus(node, wsPort, allowed)
      const none = await upgradeStatus(node, wsPort, undefined)
      rows.push(row('S8', 'foreign Origin → 403', `evil.example → ${foreign}; allowed origin → ${listed}; no Origin (non-browser) → ${none}`, foreign === 403 && listed === 101 && none === 101))

      const over = await oversizedMessage(node, wsPort, MAX_PAYLOAD + 1)
      const rssBefore = rssOf(node.pid())
      const huge = await hugeFrameHeader(node, wsPort, 200 * 1024 * 1024)
      const rssAfter = rssOf(node.pid())
      rows.push(row('S8', 'message > maxPayload (2 MiB) → close 1009', `2 MiB + 1 message → close ${over ?? 'none in 10 s'}; frame header announcing 200 MiB → close ${huge.code ?? 'none'} after ${huge.ms} ms; RSS ${((rssAfter - rssBefore) / 1048576).toFixed(1)} MB change`, over === 1009 && huge.code === 1009))

      const rounds = Math.max(1, Math.round(ctx.num('CHAOS_S8_ROUNDS', 2) * Math.min(1, ctx.scale * 2)))
      const res: CaseResult[] = []
      for (let r = 0; r < rounds; r++) for (const c of corpus()) res.push(await runCaseWs(node, wsPort, c))
      const open = res.filter((x) => x.closedMs === null || x.closedMs > 1000)
      const names = [...new Set(open.map((x) => x.name))]
      rows.push(row('S8', `S1 corpus over WebSocket: each offending connection closed ≤ 1 s (${res.length} cases)`, `${res.length - open.length}/${res.length} closed ≤ 1 s${names.length ? `; not closed: ${names.join('; ')}` : ''}`, open.length === 0))
      const alive = node.alive() && node.unexpectedExits() === 0 && (await node.health()).status === 200
      rows.push(row('S8', 'node alive and healthy', alive ? 'yes' : 'NO', alive))
      return rows
    })
  },
}
