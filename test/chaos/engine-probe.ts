// Engine side of a scale-in test (R10): things with one rule each, written
// at a steady pace over QoS1; each rule publishes the value it saw at QoS1.
// From the echoes: how long the things of a drained node went without
// firing (re-ownership time) and whether any acknowledged write fired its
// rule zero or two times.
import mqtt, { type MqttClient } from 'mqtt'
import type { Admin } from './admin.ts'
import type { Server } from './stream.ts'
import { partitionOf } from '../../engine/partition/hash.ts'

export interface EngineProbeReport {
  things: number
  /** Things whose partition the drained node owned when the probe started. */
  ownedByDrained: string[]
  /** Longest time without an echo, over the drained node's things, in [from, from + windowMs]. */
  worstGapMs: number
  writesAcked: number
  missed: number
  repeated: number
  missedSample: string[]
}

interface Status { engine?: { partitions: number, owners: Record<string, string> }, nodes: Array<{ nodeId: string, brokerId: string }> }

export class EngineProbe {
  private readonly ids: string[]
  private writer: MqttClient | null = null
  private echo: MqttClient | null = null
  private timer: NodeJS.Timeout | null = null
  private readonly acked = new Map<string, number[]>()
  private readonly echoes = new Map<string, Array<{ seq: number, at: number }>>()
  private ownedByDrained: string[] = []

  constructor (private readonly tag: string, count: number, private readonly everyMs = 200) {
    this.ids = Array.from({ length: count }, (_, i) => `${tag}-t${i}`)
  }

  /** Defines the template, things and rules, and records which things `drainNodeId` owns. */
  async setup (call: Admin['call'], drainNodeId: string, writeTo: Server, echoOn: Server): Promise<void> {
    const must = async (op: string, args: object): Promise<unknown> => {
      const r = await call(op, args, 20_000)
      if (!r.ok) throw new Error(`${op}: ${JSON.stringify(r.error)}`)
      return r.result
    }
    await must('templates/put', { id: `${this.tag}Pump`, properties: { seq: { type: 'number' } } })
    for (const id of this.ids) {
      await must('things/put', { id, template: `${this.tag}Pump` })
      await must('rules/put', { id: `${id}-echo`, thing: id, when: 'seq > 0', trigger: 'level', actions: [{ type: 'publish', topic: `${this.tag}/echo/${id}`, payload: '${seq}', qos: 1 }] })
    }
    const status = await must('cluster/status', {}) as Status
    const drained = status.nodes.find((n) => n.nodeId === drainNodeId)?.brokerId
    const engine = status.engine
    if (!drained || !engine) throw new Error(`cluster/status names no broker for ${drainNodeId} or no engine`)
    this.ownedByDrained = this.ids.filter((id) => engine.owners[String(partitionOf(id, engine.partitions))] === drained)
    this.echo = await connected(echoOn, `${this.tag}-echo`)
    this.echo.on('message', (topic, payload) => {
      const id = topic.slice(topic.lastIndexOf('/') + 1)
      let list = this.echoes.get(id)
      if (!list) { list = []; this.echoes.set(id, list) }
      list.push({ seq: Number(payload.toString()), at: Date.now() })
    })
    await this.echo.subscribeAsync(`${this.tag}/echo/+`, { qos: 1 })
    this.writer = await connected(writeTo, `${this.tag}-writer`)
  }

  /** Writes seq 1, 2, … to every thing every `everyMs`, each write waiting for its PUBACK. */
  start (): void {
    let seq = 0
    let busy = false
    this.timer = setInterval(() => {
      if (busy || !this.writer) return
      busy = true
      seq++
      const n = seq
      void Promise.all(this.ids.map(async (id) => {
        try {
          await this.writer!.publishAsync(`things/${id}/properties/seq`, String(n), { qos: 1 })
          let list = this.acked.get(id)
          if (!list) { list = []; this.acked.set(id, list) }
          list.push(n)
        } catch { /* not acknowledged: not counted */ }
      })).finally(() => { busy = false })
    }, this.everyMs)
  }

  /** Stops writing, waits up to `graceMs` for the last echoes, and reports. */
  async finish (from: number, windowMs: number, graceMs = 5000): Promise<EngineProbeReport> {
    if (this.timer) clearInterval(this.timer)
    const until = Date.now() + graceMs
    while (Date.now() < until && !this.ids.every((id) => this.echoedAll(id))) await new Promise((resolve) => setTimeout(resolve, 100))
    let worstGapMs = 0
    for (const id of this.ownedByDrained) {
      const times = [from, ...(this.echoes.get(id) ?? []).map((e) => e.at).filter((t) => t > from && t <= from + windowMs)]
      const end = Math.min(Date.now(), from + windowMs)
      for (let i = 1; i <= times.length; i++) worstGapMs = Math.max(worstGapMs, (times[i] ?? end) - times[i - 1])
    }
    let missed = 0; let repeated = 0; let writesAcked = 0
    const missedSample: string[] = []
    for (const id of this.ids) {
      const seen = new Map<number, number>()
      for (const e of this.echoes.get(id) ?? []) seen.set(e.seq, (seen.get(e.seq) ?? 0) + 1)
      for (const seq of this.acked.get(id) ?? []) {
        writesAcked++
        const c = seen.get(seq) ?? 0
        if (c === 0) { missed++; if (missedSample.length < 5) missedSample.push(`${id}:${seq}`) } else if (c > 1) repeated += c - 1
      }
    }
    return { things: this.ids.length, ownedByDrained: this.ownedByDrained, worstGapMs, writesAcked, missed, repeated, missedSample }
  }

  async close (): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    await Promise.all([this.writer?.endAsync(true), this.echo?.endAsync(true)].map((p) => p?.catch(() => {})))
  }

  private echoedAll (id: string): boolean {
    const seen = new Set((this.echoes.get(id) ?? []).map((e) => e.seq))
    return (this.acked.get(id) ?? []).every((s) => seen.has(s))
  }
}

async function connected (server: Server, clientId: string): Promise<MqttClient> {
  const c = mqtt.connect({ host: server.host, port: server.port, clientId, protocolVersion: 4, reconnectPeriod: 200, connectTimeout: 10_000 })
  c.on('error', () => {})
  await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); setTimeout(() => reject(new Error(`${clientId} did not connect`)), 15_000) })
  return c
}
