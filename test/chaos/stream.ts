// A bounded QoS1/2 message stream through the cluster: paced publishers
// spread over the nodes (mqtt.js `servers` list, so they fail over), and
// subscribers of the two classes. Every loop stops by itself: publishing at
// `durationMs`, settling at `graceMs`.
import mqtt, { type MqttClient } from 'mqtt'
import { encodePayload, RateScheduler } from '../../loadtest/index.ts'
import { AckLog, SubscriberRecord, type ClassReport, type SubscriberClass } from './checker.ts'
import { waitFor } from '../helpers/wait.ts'

export interface Server { host: string, port: number }

export interface SubscriberSpec {
  name: string
  cls: SubscriberClass
  /** First entry is where it connects first; the rest are failover targets. */
  servers: Server[]
}

export interface StreamOptions {
  name: string
  servers: Server[]
  publishers: number
  ratePerSec: number
  qos?: 1 | 2
  subscribers: SubscriberSpec[]
  reconnectPeriodMs?: number
  /** Per-publisher cap of unacknowledged messages; above it the publisher skips (counted as behind). */
  maxInflight?: number
  payloadSize?: number
}

export const nowUs = (): number => Math.round((performance.timeOrigin + performance.now()) * 1000)

interface Pub { id: string, client: MqttClient, seq: number, inflight: number, sched: RateScheduler, closes: number[], acksByPort: Array<[number, number]> }
interface Sub { spec: SubscriberSpec, client: MqttClient, record: SubscriberRecord, disconnects: number }

export class Stream {
  readonly acks = new AckLog()
  readonly pubs: Pub[] = []
  readonly subs: Sub[] = []
  behind = 0
  publishing = false
  #timer: NodeJS.Timeout | null = null
  readonly topic: string

  constructor (readonly opts: StreamOptions) {
    this.topic = `chaos/${opts.name}`
  }

  #client (clientId: string, servers: Server[], clean: boolean): MqttClient {
    const c = mqtt.connect({
      servers: servers.map((s) => ({ host: s.host, port: s.port })),
      clientId, clean, protocolVersion: 4, keepalive: 10,
      reconnectPeriod: this.opts.reconnectPeriodMs ?? 100, connectTimeout: 3000, resubscribe: true,
    })
    c.on('error', () => {})
    return c
  }

  async start (): Promise<void> {
    const qos = this.opts.qos ?? 1
    for (const spec of this.opts.subscribers) {
      const record = new SubscriberRecord(spec.name, spec.cls)
      const client = this.#client(`${this.opts.name}-sub-${spec.name}`, spec.servers, spec.cls === 'clean')
      const sub: Sub = { spec, client, record, disconnects: 0 }
      client.on('message', (_t, payload) => record.record(payload, nowUs()))
      client.on('close', () => { sub.disconnects++ })
      await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); setTimeout(() => reject(new Error(`${spec.name} did not connect`)), 10_000) })
      await client.subscribeAsync(`${this.topic}/#`, { qos })
      sub.disconnects = 0
      this.subs.push(sub)
    }
    const n = this.opts.servers.length
    for (let i = 0; i < this.opts.publishers; i++) {
      const rotated = [...this.opts.servers.slice(i % n), ...this.opts.servers.slice(0, i % n)]
      const id = `${this.opts.name}-p${i}`
      const client = this.#client(id, rotated, true)
      await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); setTimeout(() => reject(new Error(`${id} did not connect`)), 10_000) })
      const rate = this.opts.ratePerSec / this.opts.publishers
      const pub: Pub = { id, client, seq: 0, inflight: 0, sched: new RateScheduler(rate, Date.now(), Math.max(1, Math.ceil(rate / 10))), closes: [], acksByPort: [] }
      client.on('close', () => pub.closes.push(Date.now()))
      this.pubs.push(pub)
    }
  }

  /** Publishers connected to `port` right now. */
  publishersOn (port: number): string[] {
    return this.pubs.filter((p) => p.client.connected && p.client.options.port === port).map((p) => p.id)
  }

  /** Starts publishing; stops by itself after durationMs. Resolves when publishing has stopped. */
  publishFor (durationMs: number): Promise<void> {
    const qos = this.opts.qos ?? 1
    const maxInflight = this.opts.maxInflight ?? 1000
    const endAt = Date.now() + durationMs
    this.publishing = true
    for (const p of this.pubs) p.sched = new RateScheduler(p.sched.ratePerSec, Date.now(), p.sched.maxBurst)
    return new Promise((resolve) => {
      this.#timer = setInterval(() => {
        const now = Date.now()
        if (now >= endAt || !this.publishing) {
          clearInterval(this.#timer!)
          this.publishing = false
          resolve()
          return
        }
        for (const p of this.pubs) {
          const n = p.sched.take(now)
          for (let k = 0; k < n; k++) {
            if (!p.client.connected || p.inflight >= maxInflight) { this.behind++; continue }
            const seq = ++p.seq
            p.inflight++
            this.acks.sent++
            p.client.publish(`${this.topic}/${p.id}`, encodePayload(p.id, seq, nowUs(), this.opts.payloadSize ?? 0), { qos }, (err) => {
              p.inflight--
              if (err) this.acks.refused++
              else {
                const t = Date.now()
                this.acks.ack(p.id, seq, t)
                p.acksByPort.push([t, Number(p.client.options.port)])
              }
            })
          }
        }
      }, 5)
    })
  }

  /** Waits (bounded) for outstanding PUBACKs after publishing stopped. */
  async settleAcks (timeoutMs = 5000): Promise<void> {
    await waitFor(() => this.pubs.every((p) => p.inflight === 0), 'outstanding PUBACKs', timeoutMs, 50).catch(() => {})
  }

  #complete (rec: SubscriberRecord): boolean {
    for (const [pub, seqs] of this.acks.acked) {
      const got = rec.seen.get(pub)
      if (!got) return false
      for (const s of seqs) if (!got.has(s)) return false
    }
    return true
  }

  /**
   * Grace period, then the count. Persistent subscribers disconnect and
   * reconnect (clean=false) to `reconnectTo` first, so anything queued for
   * them is delivered before it is counted.
   */
  async finish (graceMs: number, reconnectTo: Server[]): Promise<ClassReport[]> {
    await this.settleAcks()
    for (const p of this.pubs) await p.client.endAsync(true).catch(() => {})
    const deadline = Date.now() + graceMs
    const remaining = (): number => Math.max(200, deadline - Date.now())
    // Clean subscribers: wait until complete or the grace period ends.
    await waitFor(() => this.subs.filter((s) => s.spec.cls === 'clean').every((s) => this.#complete(s.record)), 'clean subscribers complete', remaining(), 50).catch(() => {})
    for (const s of this.subs.filter((x) => x.spec.cls === 'persistent')) {
      await s.client.endAsync(false).catch(() => {})
      s.record.recordLatency = false
      const again = this.#client(`${this.opts.name}-sub-${s.spec.name}`, reconnectTo, false)
      again.on('message', (_t, payload) => s.record.record(payload, nowUs()))
      s.client = again
      await waitFor(() => this.#complete(s.record), `${s.spec.name} complete after reconnect`, remaining(), 50).catch(() => {})
    }
    return this.subs.map((s) => s.record.report(this.acks))
  }

  subscriberDisconnects (name: string): number {
    return this.subs.find((s) => s.spec.name === name)?.disconnects ?? 0
  }

  async close (): Promise<void> {
    this.publishing = false
    if (this.#timer) clearInterval(this.#timer)
    await Promise.all([...this.pubs.map((p) => p.client), ...this.subs.map((s) => s.client)].map((c) => c.endAsync(true).catch(() => {})))
  }
}
