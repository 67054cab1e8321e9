// S1: malformed packets over TCP (and WebSocket when the node has a WS
// listener). Every offending connection must be closed within 1 s, no node
// may crash, and a bystander's latency must stay low.
import { connect as tcpConnect, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import { row, notRun, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { hasOption, ifOption, type ChaosNode } from '../cluster.ts'
import { startProbe } from '../probe.ts'
import { freePort } from '../../helpers/ports.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object, opts?: object): Buffer }

const connect = (extra: object = {}): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'mal', keepalive: 30, ...extra })
const rawConnect = (level: number): Buffer => Buffer.concat([Buffer.from([0x10, 12, 0, 4]), Buffer.from('MQTT'), Buffer.from([level, 0x02, 0, 30, 0, 0])])

/** Remaining-length encoding (MQTT 2.2.3). */
function varint (n: number): Buffer {
  const out: number[] = []
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b) } while (n > 0)
  return Buffer.from(out)
}
const publishRaw = (topic: Buffer, payload = Buffer.from('x')): Buffer => {
  const body = Buffer.concat([Buffer.from([topic.length >> 8, topic.length & 255]), topic, payload])
  return Buffer.concat([Buffer.from([0x30]), varint(body.length), body])
}

function v5ConnectWithUserProps (n: number): Buffer {
  const props = Array.from({ length: n }, (_, i) => Buffer.concat([Buffer.from([0x26, 0, 1]), Buffer.from(String.fromCharCode(97 + (i % 26))), Buffer.from([0, 1, 0x78])]))
  const propBuf = Buffer.concat(props)
  const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([5, 0x02, 0, 30]), varint(propBuf.length), propBuf, Buffer.from([0, 3]), Buffer.from('v5u')])
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body])
}

export interface Case { name: string, preConnect: boolean, bytes: Buffer, note?: string }

/** The corpus. `preConnect: false` cases are sent after a valid CONNECT/CONNACK. */
export function corpus (): Case[] {
  return [
    // FUME-style mutations of CONNECT: bad protocol name, truncated header, bogus flags.
    { name: 'CONNECT protocol name MQTX', preConnect: true, bytes: Buffer.concat([Buffer.from([0x10, 12, 0, 4]), Buffer.from('MQTX'), Buffer.from([4, 0x02, 0, 30, 0, 0])]) },
    { name: 'CONNECT reserved flag bit set', preConnect: true, bytes: Buffer.concat([Buffer.from([0x10, 12, 0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x03, 0, 30, 0, 0])]) },
    { name: 'CONNECT length shorter than fields', preConnect: true, bytes: Buffer.concat([Buffer.from([0x10, 6, 0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x02, 0, 30, 0, 0])]) },
    // aedes #612-like: will flag set without a will topic; password without username.
    { name: 'CONNECT will flag without will topic', preConnect: true, bytes: Buffer.concat([Buffer.from([0x10, 12, 0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x06, 0, 30, 0, 0])]) },
    { name: 'CONNECT password flag without username', preConnect: true, bytes: Buffer.concat([Buffer.from([0x10, 14, 0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x42, 0, 30, 0, 0, 0, 0])]) },
    { name: 'malformed DISCONNECT (remaining length 1)', preConnect: false, bytes: Buffer.from([0xe0, 0x01, 0x00]) },
    { name: 'PUBACK before CONNECT', preConnect: true, bytes: Buffer.from([0x40, 0x02, 0x00, 0x01]) },
    { name: 'reserved packet type 0', preConnect: true, bytes: Buffer.from([0x00, 0x00]) },
    { name: 'reserved packet type 15', preConnect: true, bytes: Buffer.from([0xf0, 0x00]) },
    { name: 'reserved packet type 15 after CONNECT', preConnect: false, bytes: Buffer.from([0xf0, 0x00]) },
    { name: '5-byte remaining length', preConnect: true, bytes: Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]) },
    { name: 'protocol level 9', preConnect: true, bytes: rawConnect(9) },
    { name: 'zero-length topic PUBLISH (CVE-2021-34432)', preConnect: false, bytes: publishRaw(Buffer.alloc(0)) },
    { name: '10k v5 user properties (CVE-2021-41039)', preConnect: true, bytes: v5ConnectWithUserProps(10_000) },
    { name: 'second CONNECT [MQTT-3.1.0-2]', preConnect: false, bytes: connect({ clientId: 'mal2' }) },
    { name: '+ in PUBLISH topic', preConnect: false, bytes: publishRaw(Buffer.from('a/+/b')) },
    { name: '# in PUBLISH topic', preConnect: false, bytes: publishRaw(Buffer.from('a/#')) },
    { name: '101-level PUBLISH topic', preConnect: false, bytes: publishRaw(Buffer.from(Array.from({ length: 101 }, () => 'l').join('/'))) },
    { name: 'NUL in PUBLISH topic', preConnect: false, bytes: publishRaw(Buffer.from('a/\u0000/b')) },
    { name: 'invalid UTF-8 in PUBLISH topic', preConnect: false, bytes: publishRaw(Buffer.from([0x61, 0xc3, 0x28])) },
    { name: 'SUBSCRIBE with QoS 3', preConnect: false, bytes: Buffer.from([0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x03]) },
    { name: 'SUBSCRIBE with no filters', preConnect: false, bytes: Buffer.from([0x82, 0x02, 0x00, 0x01]) },
    { name: 'PUBLISH QoS 3', preConnect: false, bytes: Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01]) },
  ]
}

export interface CaseResult { name: string, closedMs: number | null, sent: boolean }

/** Sends one case on a fresh TCP connection; resolves with how long until the broker closed it (null: not within 3 s). */
export async function runCase (node: ChaosNode, c: Case): Promise<CaseResult> {
  const socket: Socket = tcpConnect(node.port, node.host)
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
  socket.on('data', () => {})
  if (!c.preConnect) {
    socket.write(connect({ clientId: `mal-${Math.random().toString(36).slice(2, 8)}` }))
    await new Promise<void>((resolve) => socket.once('data', () => resolve())) // CONNACK
  }
  const start = Date.now()
  socket.write(c.bytes)
  const at = await Promise.race([closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000))])
  socket.destroy()
  return { name: c.name, closedMs: at === null ? null : at - start, sent: true }
}

/** The same bytes over a WebSocket (binary frames), using the `ws` package mqtt.js ships with. */
export async function runCaseWs (node: ChaosNode, wsPort: number, c: Case): Promise<CaseResult> {
  const { WebSocket } = require('ws') as typeof import('ws')
  const ws = new WebSocket(`ws://${node.host}:${wsPort}/mqtt`, 'mqtt')
  ws.on('error', () => {})
  const opened = await new Promise<boolean>((resolve) => { ws.once('open', () => resolve(true)); ws.once('close', () => resolve(false)) })
  if (!opened) return { name: c.name, closedMs: null, sent: false }
  const closed = new Promise<number>((resolve) => ws.once('close', () => resolve(Date.now())))
  if (!c.preConnect) {
    ws.send(connect({ clientId: `malws-${Math.random().toString(36).slice(2, 8)}` }))
    await new Promise<void>((resolve) => ws.once('message', () => resolve()))
  }
  const start = Date.now()
  ws.send(c.bytes)
  const at = await Promise.race([closed, new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000))])
  ws.terminate()
  return { name: c.name, closedMs: at === null ? null : at - start, sent: true }
}

export const s1: ChaosTest = {
  id: 'S1',
  title: 'Malformed packet corpus',
  async run (ctx) {
    const ws = hasOption('--ws-port')
    const wsPort = ws ? await freePort() : 0
    return withSimpleEnv({ nodes: 1, tag: 'S1', args: ws ? ['--ws-port', String(wsPort), ...ifOption('--ws-origins', '*')] : [] }, async ({ cluster }) => {
      const node = cluster.nodes[0]
      const probe = await startProbe({ host: node.host, port: node.port }, 's1')
      const rounds = Math.max(1, Math.round(ctx.num('CHAOS_S1_ROUNDS', 5) * Math.min(1, ctx.scale * 2)))
      const tcp: CaseResult[] = []
      const wsRes: CaseResult[] = []
      for (let r = 0; r < rounds; r++) {
        for (const c of corpus()) {
          tcp.push(await runCase(node, c))
          if (ws) wsRes.push(await runCaseWs(node, wsPort, c))
        }
      }
      const p = await probe.stop()
      const rows: Row[] = []
      const judge = (label: string, res: CaseResult[]): Row => {
        const open = res.filter((x) => x.closedMs === null || x.closedMs > 1000)
        const worst = Math.max(...res.map((x) => x.closedMs ?? Infinity))
        const names = [...new Set(open.map((x) => x.name))]
        return row('S1', `each offending connection closed ≤ 1 s (${label}, ${res.length} cases)`, `${res.length - open.length}/${res.length} closed ≤ 1 s, worst ${Number.isFinite(worst) ? worst + ' ms' : 'not closed in 3 s'}${names.length ? `; not closed: ${names.join('; ')}` : ''}`, open.length === 0, { results: res.slice(0, corpus().length) })
      }
      rows.push(judge('TCP', tcp))
      if (ws) rows.push(judge('WebSocket', wsRes))
      else rows.push(notRun('S1', 'each offending connection closed ≤ 1 s (WebSocket)', 'node has no --ws-port option'))
      const alive = node.alive() && node.unexpectedExits() === 0 && (await node.health()).status === 200
      rows.push(row('S1', '0 process crashes', alive ? 'node alive and healthy after the corpus' : `node down (exits ${node.exits.join(',')})`, alive))
      rows.push(row('S1', 'other clients p99 < 100 ms', `bystander p99 ${p.latency.p99Ms} ms, ${p.received}/${p.sent} received`, p.latency.p99Ms < 100 && p.received === p.sent && p.sent > 0))
      return rows
    })
  },
}
