// R7: 1,000 retained messages, the Redis primary SIGKILLed 50 ms after the
// last PUBACK; after the failover a new subscriber must get all of them, and
// again after every broker restarts.
import mqtt, { type MqttClient } from 'mqtt'
import { row, type ChaosTest, type Row } from '../report.ts'
import { withEnv } from '../env.ts'
import { noIpCaps, type ChaosNode } from '../cluster.ts'

/** Connects, retrying for ≤ 20 s: right after a failover a node refuses CONNECT (0x03) until Redis is back. */
async function connectRetry (node: ChaosNode, withinMs = 20_000): Promise<MqttClient> {
  const until = Date.now() + withinMs
  for (;;) {
    const c: MqttClient = mqtt.connect({ host: node.host, port: node.port, clientId: `r7-check-${Math.random().toString(36).slice(2, 8)}`, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 })
    c.on('error', () => {})
    const ok = await new Promise<boolean>((resolve) => { c.once('connect', () => resolve(true)); c.once('close', () => resolve(false)) })
    if (ok) return c
    if (Date.now() > until) throw new Error(`node ${node.nodeId} refused CONNECT for ${withinMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function countRetained (node: ChaosNode, prefix: string, expect: number): Promise<number> {
  const c = await connectRetry(node)
  const seen = new Set<string>()
  let last = Date.now()
  c.on('message', (t, _p, packet) => { if (packet.retain) { seen.add(t); last = Date.now() } })
  await c.subscribeAsync(`${prefix}/#`, { qos: 1 })
  // Retained messages arrive right after SUBACK; done when all are in or none came for 5 s.
  const until = Date.now() + 20_000
  while (seen.size < expect && Date.now() < until && Date.now() - last < 5000) await new Promise((resolve) => setTimeout(resolve, 50))
  await c.endAsync(true)
  return seen.size
}

export const r7: ChaosTest = {
  id: 'R7',
  title: 'Retained durability',
  async run (ctx) {
    const n = ctx.num('CHAOS_R7_COUNT', 1000)
    return withEnv({ tag: 'R7', args: noIpCaps() }, async ({ topo, cluster }) => {
      const [n1, n2] = cluster.nodes
      void n2
      const pub = mqtt.connect({ host: n1.host, port: n1.port, clientId: 'r7-pub', protocolVersion: 4, reconnectPeriod: 0 })
      pub.on('error', () => {})
      await new Promise((resolve) => pub.once('connect', resolve))
      const batch = 100
      for (let i = 0; i < n; i += batch) {
        await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => pub.publishAsync(`r7/t${i + k}`, `v${i + k}`, { qos: 1, retain: true })))
      }
      const lastAck = Date.now()
      await pub.endAsync(true)
      const primary = await topo.primary()
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastAck + 50 - Date.now())))
      primary.proc.kill('SIGKILL')
      const killed = Date.now()
      await topo.waitFailover(primary.port, 60_000)
      ctx.log(`R7: failover after ${Date.now() - killed} ms`)
      await cluster.waitMembers(3, 20_000).catch(() => {})
      const rows: Row[] = []
      // Every node should serve again soon after the failover; count retained on the first that does.
      const serving: string[] = []
      for (const x of cluster.nodes) if (await connectRetry(x, 10_000).then((c) => { c.end(true); return true }, () => false)) serving.push(x.nodeId)
      rows.push(row('R7', 'every node accepts CONNECT ≤ 10 s after the failover (prerequisite)', `${serving.length}/3 serving (${serving.join(', ') || 'none'})`, serving.length === 3))
      const reader = cluster.nodes.find((x) => serving.includes(x.nodeId)) ?? n2
      const afterFailover = await countRetained(reader, 'r7', n)
      rows.push(row('R7', `${n}/${n} retained after primary SIGKILL 50 ms after last PUBACK (no WAIT/min-replicas configured)`, `${afterFailover}/${n}`, afterFailover === n))
      for (const x of cluster.nodes) await x.restart()
      await cluster.waitMembers(3, 20_000).catch(() => {})
      const afterRestart = await countRetained(n1, 'r7', n)
      rows.push(row('R7', `${n}/${n} retained after restarting all brokers (Redis up)`, `${afterRestart}/${n}`, afterRestart === n))
      return rows
    })
  },
}
