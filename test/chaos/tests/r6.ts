// R6: the same clientId connects to another node; the old connection must be
// closed quickly, exactly one session must survive, and a persistent
// session's unacknowledged (inflight) message must follow it.
import mqtt, { type MqttClient } from 'mqtt'
import { row, type ChaosContext, type ChaosTest, type Row } from '../report.ts'
import { withEnv } from '../env.ts'
import { noIpCaps, type ChaosNode } from '../cluster.ts'
import { waitFor } from '../../helpers/wait.ts'

interface Outcome { id: string, ms: number, first: MqttClient, second: MqttClient | null, secondNode: ChaosNode, inflightOk: boolean | null, error?: string, attempts?: number }

function open (node: ChaosNode, clientId: string, clean: boolean, ack = true): { client: MqttClient, connected: Promise<number>, closed: Promise<number> } {
  const client = mqtt.connect({ host: node.host, port: node.port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 15_000, keepalive: 30 })
  // An old connection that never PUBACKs keeps its message inflight.
  if (!ack) client.handleMessage = (_packet, _cb) => {}
  client.on('error', () => {})
  const connected = new Promise<number>((resolve, reject) => {
    client.once('connect', () => resolve(Date.now()))
    client.once('close', () => reject(new Error(`${clientId} closed before CONNACK`)))
  })
  connected.catch(() => {})
  const closed = new Promise<number>((resolve) => client.once('close', () => resolve(Date.now())))
  return { client, connected, closed }
}

interface Prepared { id: string, i: number, persistent: boolean, first: ReturnType<typeof open>, gotOld: () => boolean }

async function prepare (nodes: ChaosNode[], pub: MqttClient, i: number, tag: string): Promise<Prepared> {
  const id = `r6-${tag}-${i}`
  const persistent = i % 10 === 0
  const first = open(nodes[i % nodes.length], id, !persistent, !persistent)
  await first.connected
  let got = false
  if (persistent) {
    first.client.on('packetreceive', (p) => { if (p.cmd === 'publish') got = true })
    await first.client.subscribeAsync(`r6/${id}`, { qos: 1 })
    await pub.publishAsync(`r6/${id}`, 'inflight', { qos: 1 })
    await waitFor(() => got, `${id} old connection got the message`, 10_000, 10)
  }
  return { id, i, persistent, first, gotOld: () => got }
}

async function complete (nodes: ChaosNode[], p: Prepared, retry: boolean): Promise<Outcome> {
  const b = nodes[(p.i + 1) % nodes.length]
  const start = Date.now()
  let redelivered = false
  let error: string | undefined
  // A CONNACK refusal (0x03 while Redis fails over) ends an mqtt.js client, so
  // retrying is done here with fresh clients, as a device would, for ≤ 30 s.
  let second = open(b, p.id, !p.persistent)
  second.client.on('message', (_t, m) => { if (m.toString() === 'inflight') redelivered = true })
  let attempts = 1
  for (;;) {
    const ok = await second.connected.then(() => true, (err: Error) => { error = err.message; return false })
    if (ok) { error = undefined; break }
    if (!retry || Date.now() - start > 30_000) break
    await new Promise((resolve) => setTimeout(resolve, 200))
    second.client.end(true)
    second = open(b, p.id, !p.persistent)
    second.client.on('message', (_t, m) => { if (m.toString() === 'inflight') redelivered = true })
    attempts++
  }
  const closedAt = await Promise.race([p.first.closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 5_000))])
  let inflightOk: boolean | null = null
  if (p.persistent) inflightOk = await waitFor(() => redelivered, `${p.id} inflight redelivered`, 5000, 10).then(() => true, () => false)
  return { id: p.id, ms: closedAt - start, first: p.first.client, second: second.client, secondNode: b, inflightOk, error, attempts }
}

async function takeover (nodes: ChaosNode[], pub: MqttClient, i: number, tag: string): Promise<Outcome> {
  return complete(nodes, await prepare(nodes, pub, i, tag), false)
}

async function batch (count: number, conc: number, run: (i: number) => Promise<Outcome>): Promise<Outcome[]> {
  const out: Outcome[] = []
  let next = 0
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < count) {
      const i = next++
      // Every iteration is bounded: a hung CONNECT/SUBSCRIBE counts as an error, never stalls the campaign.
      out.push(await Promise.race([run(i), new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error(`takeover ${i} did not finish in 45 s`)), 45_000))]).catch((err: Error) => ({ id: `#${i}`, ms: Infinity, first: null as unknown as MqttClient, second: null, secondNode: null as unknown as ChaosNode, inflightOk: null, error: err.message })))
    }
  }))
  return out
}

const quant = (xs: number[], q: number): number => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN }

export const r6: ChaosTest = {
  id: 'R6',
  title: 'Session takeover across nodes',
  async run (ctx: ChaosContext) {
    const count = Math.max(30, Math.round(ctx.num('CHAOS_R6_COUNT', 1000) * ctx.scale))
    const duringFailover = Math.max(20, Math.round(ctx.num('CHAOS_R6_FAILOVER_COUNT', 100) * ctx.scale))
    const conc = ctx.num('CHAOS_R6_CONCURRENCY', 8)
    return withEnv({ args: noIpCaps(), tag: 'R6' }, async ({ topo, cluster }) => {
      const nodes = cluster.nodes
      const pub = mqtt.connect({ host: nodes[0].host, port: nodes[0].port, clientId: 'r6-pub', protocolVersion: 4, reconnectPeriod: 200 })
      pub.on('error', () => {})
      await new Promise((resolve) => pub.once('connect', resolve))
      const all: Outcome[] = []
      try {
        const normal = await batch(count, conc, (i) => takeover(nodes, pub, i, 'n'))
        all.push(...normal)
        ctx.log(`R6: ${normal.length} takeovers done`)
        // Sessions are established first; the takeovers start right after the primary is killed.
        const prepared: Prepared[] = []
        for (let i = 0; i < duringFailover; i++) prepared.push(await prepare(nodes, pub, i, 'f'))
        const primary = await topo.primary()
        const killed = Date.now()
        primary.proc.kill('SIGKILL')
        const failoverMs = topo.waitFailover(primary.port, 30_000).then(() => Date.now() - killed)
        const during = await Promise.all(prepared.map((p) => complete(nodes, p, true)))
        const fo = await failoverMs.catch(() => Infinity)
        all.push(...during)
        ctx.log(`R6: failover took ${fo} ms; ${during.length} takeovers during it`)

        // ≤ 1 live session per clientId, 5 s after (time-based by the criterion itself).
        await new Promise((resolve) => setTimeout(resolve, 5000))
        const brokerOf = new Map<string, string>()
        for (const n of nodes) brokerOf.set(n.nodeId, String((await n.health()).body.brokerId))
        const redis = topo.client()
        const owners = await redis.hgetall('tm:{thingmesh}:owners')
        let bothLive = 0
        let noneLive = 0
        let ownerWrong = 0
        for (const o of all) {
          if (!o.second) { noneLive++; continue }
          const firstLive = o.first?.connected === true
          const secondLive = o.second.connected
          if (firstLive && secondLive) bothLive++
          if (!secondLive) noneLive++
          const owner = owners[o.id]?.split('|')[0]
          if (owner !== brokerOf.get(o.secondNode.nodeId)) ownerWrong++
        }
        const rows: Row[] = []
        const nrm = normal.map((o) => o.ms)
        const fov = during.map((o) => o.ms)
        const errors = all.filter((o) => o.error)
        rows.push(row('R6', `old connection closed ≤ 500 ms (${normal.length} takeovers)`, `p50 ${quant(nrm, 0.5)} ms, p99 ${quant(nrm, 0.99)} ms, max ${Math.max(...nrm)} ms; ${nrm.filter((x) => x > 500).length} over 500 ms`, nrm.every((x) => x <= 500), { errors: normal.filter((o) => o.error).map((o) => o.error).slice(0, 5) }))
        rows.push(row('R6', `during failover ≤ failover + 1 s (${during.length} takeovers)`, `failover ${fo} ms; max ${Math.max(...fov)} ms, p50 ${quant(fov, 0.5)} ms; ${fov.filter((x) => x > fo + 1000).length} over; CONNECT attempts max ${Math.max(...during.map((o) => o.attempts ?? 1))}`, Number.isFinite(fo) && fov.every((x) => x <= fo + 1000), { errors: during.filter((o) => o.error).map((o) => o.error).slice(0, 5) }))
        rows.push(row('R6', '≤ 1 live session per clientId 5 s after', `${bothLive} with both connections live, ${noneLive} with none, ${ownerWrong} owner records not on the new node, ${errors.length} errors`, bothLive === 0 && noneLive === 0 && ownerWrong === 0, { errors: errors.map((e) => e.error).slice(0, 10) }))
        const pers = all.filter((o) => o.inflightOk !== null)
        const lostInflight = pers.filter((o) => o.inflightOk === false).length
        rows.push(row('R6', '0 inflight lost for clean=false', `${lostInflight} of ${pers.length} inflight messages not redelivered to the new connection`, pers.length > 0 && lostInflight === 0))
        return rows
      } finally {
        await Promise.all([pub, ...all.flatMap((o) => [o.first, o.second])].filter((c): c is MqttClient => !!c).map((c) => c.endAsync(true).catch(() => {})))
      }
    })
  },
}
