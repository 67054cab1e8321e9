// A set of MQTT clients run by one thread: connects them at the ramp rate,
// publishes at its share of the rate, receives and checks messages, and
// hands the coordinator counters once a second and a report at the end.
// Every method takes and returns plain data so the same class runs in the
// main thread or behind a worker_threads RPC (worker.ts).

import mqtt, { type MqttClient } from 'mqtt'
import type { LoadtestConfig } from './config.ts'
import { clientOptions, effectiveUrl, failureReason } from './connection.ts'
import { decodePayload, encodePayload, nowUs } from './payload.ts'
import { propertyName, type ClientSpec, type ShardPlan } from './plan.ts'
import { RateScheduler } from './scheduler.ts'
import { EMPTY_LOSS, SequenceChecker, addLoss, summarizeStreams, type LossSummary } from './sequence.ts'
import { LatencyHistogram, emptyCounters, type IntervalCounters } from './stats.ts'
import { expandTopic } from './topic.ts'
import { fleetPayload, notificationMarks } from './fleet-payload.ts'

export interface ShardSample {
  readonly counters: IntervalCounters
  readonly connected: number
  readonly latencyCount: number
  readonly p99Ms: number
}

export interface ConnectReport {
  readonly attempted: number
  readonly connected: number
  readonly failures: Record<string, number>
  /** Encoded histogram of CONNECT-to-CONNACK times. */
  readonly connectTimes: string
  /** From the first CONNECT until every client connected or failed once. */
  readonly durationMs: number
}

export interface Outage {
  readonly clientId: string
  readonly role: string
  readonly downAtMs: number
  /** Reconnected (and, for subscribers, resubscribed); null if still down. */
  readonly upAtMs: number | null
}

export interface ShardReport {
  readonly lastSeq: Record<string, number>
  readonly sent: number
  readonly acked: number
  readonly behind: number
  readonly loss: LossSummary
  readonly dropped: number
  readonly latency: string
  readonly maxGap: { readonly ms: number; readonly atMs: number; readonly clientId: string } | null
  readonly outages: readonly Outage[]
  readonly errors: Record<string, number>
  readonly notifications: number
}

interface Conn {
  readonly spec: ClientSpec
  readonly client: MqttClient
  up: boolean
  everConnected: boolean
  /** Open outage, for failover timing. */
  outage: { downAtMs: number; recovered: boolean } | null
  seq: number
  inflight: number
  // receivers
  checker: SequenceChecker | null
  arrivals: number
  /** Unique own messages plus injected drops: what drain waits for. */
  settled: number
  lastRecvMs: number
  maxNotifiedSeq: number
}

const nowMs = (): number => nowUs() / 1000

export class Shard {
  readonly #config: LoadtestConfig
  readonly #plan: ShardPlan
  readonly #conns: Conn[] = []
  readonly #pubs: Conn[] = []
  readonly #subs: Conn[] = []
  #counters = emptyCounters()
  readonly #interval = new LatencyHistogram()
  readonly #latency = new LatencyHistogram()
  readonly #connectTimes = new LatencyHistogram()
  readonly #failures: Record<string, number> = {}
  readonly #errors: Record<string, number> = {}
  readonly #outages: Outage[] = []
  #scheduler: RateScheduler | null = null
  #publishing = false
  #timer: NodeJS.Timeout | null = null
  #immediate: NodeJS.Immediate | null = null
  #cursor = 0
  #sent = 0
  /** Sum of every publisher's in-flight count, so a tick need not walk them all. */
  #inflightTotal = 0
  #stoppedAtMs: number | null = null
  /** Between startPublishing and stopPublishing, even for a shard with no publishers: delivery gaps count then. */
  #active = false
  #acked = 0
  #received = 0
  #dropped = 0
  #notifications = 0
  #maxGap: ShardReport['maxGap'] = null
  #done: () => void = () => {}
  readonly #donePromise: Promise<void>
  #drainCheck: (() => void) | null = null
  #expected: Record<string, Record<string, number>> | null = null
  #closing = false
  #connectStarted = performance.now()
  readonly #ownPrefix: string

  constructor(config: LoadtestConfig, plan: ShardPlan) {
    this.#config = config
    this.#plan = plan
    this.#ownPrefix = `${config.clientPrefix}-`
    this.#donePromise = new Promise((resolve) => (this.#done = resolve))
  }

  /** Opens every client at this shard's share of --ramp; resolves when each has connected or failed once. */
  async connect(): Promise<ConnectReport> {
    const rampShare = this.#config.ramp / this.#config.workers
    this.#connectStarted = performance.now()
    const firsts: Promise<void>[] = []
    for (let i = 0; i < this.#plan.clients.length; i++) {
      if (this.#closing) break
      const due = this.#connectStarted + (i * 1000) / rampShare
      const wait = due - performance.now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      if (this.#closing) break
      firsts.push(this.#open(this.#plan.clients[i]!))
    }
    await Promise.all(firsts)
    return this.connectReport()
  }

  /** Connection progress so far; also used when a run is stopped while still connecting. */
  connectReport(): ConnectReport {
    return {
      attempted: this.#conns.length,
      connected: this.#conns.filter((c) => c.up).length,
      failures: { ...this.#failures },
      connectTimes: this.#connectTimes.encode(),
      durationMs: performance.now() - this.#connectStarted,
    }
  }

  #open(spec: ClientSpec): Promise<void> {
    const cfg = this.#config
    const t0 = performance.now()
    const client = mqtt.connect(effectiveUrl(spec.url, cfg), clientOptions(cfg, spec.clientId))
    const receives = spec.role === 'sub' || spec.role === 'device'
    const c: Conn = {
      spec,
      client,
      up: false,
      everConnected: false,
      outage: null,
      seq: 0,
      inflight: 0,
      checker: spec.role === 'sub' ? new SequenceChecker() : null,
      arrivals: 0,
      settled: 0,
      lastRecvMs: 0,
      maxNotifiedSeq: 0,
    }
    this.#conns.push(c)
    if (spec.role === 'pub' || spec.role === 'device') this.#pubs.push(c)
    if (spec.role === 'sub') this.#subs.push(c)

    return new Promise<void>((resolve) => {
      let first = true
      const settleFirst = (failure: string | null): void => {
        if (!first) return
        first = false
        if (failure !== null) this.#failures[failure] = (this.#failures[failure] ?? 0) + 1
        resolve()
      }
      client.on('connect', (connack) => {
        c.up = true
        this.#counters.connects++
        if (!c.everConnected) this.#connectTimes.recordUs((performance.now() - t0) * 1000)
        c.everConnected = true
        if (!receives) {
          this.#recovered(c)
          settleFirst(null)
          return
        }
        // With a persistent session the broker kept the subscription [MQTT-3.2.2-2].
        if (connack.sessionPresent && !cfg.clean) {
          this.#recovered(c)
          settleFirst(null)
          return
        }
        client.subscribe(spec.filter!, { qos: cfg.qos }, (err, granted) => {
          const refused = granted?.some((g) => g.qos === 128)
          if (err || refused) {
            this.#error(err ? `subscribe ${failureReason(err)}` : 'subscribe refused')
            settleFirst(`subscribe ${err ? failureReason(err) : 'refused'}`)
            return
          }
          this.#recovered(c)
          settleFirst(null)
        })
      })
      client.on('close', () => {
        if (c.up && !this.#closing) {
          this.#counters.disconnects++
          c.outage = { downAtMs: nowMs(), recovered: false }
          this.#outages.push({ clientId: spec.clientId, role: spec.role, downAtMs: c.outage.downAtMs, upAtMs: null })
        }
        c.up = false
        if (!c.everConnected) settleFirst('closed before CONNACK')
      })
      client.on('error', (err) => {
        const reason = failureReason(err)
        this.#error(reason)
        if (!c.everConnected) settleFirst(reason)
      })
      if (receives) client.on('message', (topic, payload) => this.#onMessage(c, topic, payload))
    })
  }

  #recovered(c: Conn): void {
    if (c.outage === null || c.outage.recovered) return
    c.outage.recovered = true
    const upAtMs = nowMs()
    for (let i = this.#outages.length - 1; i >= 0; i--) {
      const o = this.#outages[i]!
      if (o.clientId === c.spec.clientId && o.upAtMs === null) {
        this.#outages[i] = { ...o, upAtMs }
        break
      }
    }
  }

  #error(reason: string): void {
    this.#counters.errors++
    this.#errors[reason] = (this.#errors[reason] ?? 0) + 1
  }

  #onMessage(c: Conn, topic: string, payload: Buffer): void {
    const now = nowMs()
    c.arrivals++
    const dropEvery = this.#config.injectDropEvery
    if (dropEvery !== null && c.arrivals % dropEvery === 0) {
      this.#dropped++
      c.settled++
      this.#drainCheck?.()
      return
    }
    this.#counters.received++
    this.#received++
    if (c.lastRecvMs > 0 && this.#active) {
      const gap = now - c.lastRecvMs
      if (this.#maxGap === null || gap > this.#maxGap.ms) this.#maxGap = { ms: gap, atMs: c.lastRecvMs, clientId: c.spec.clientId }
    }
    c.lastRecvMs = now
    if (c.spec.role === 'device') {
      this.#onNotification(c, payload)
      return
    }
    const d = decodePayload(payload)
    if (d === null) return
    const result = c.checker!.record(d.publisherId, d.seq)
    const own = this.#config.scenario === 'sub' || d.publisherId.startsWith(this.#ownPrefix)
    if (own) {
      const lat = nowUs() - d.sendTsUs
      this.#latency.recordUs(lat)
      this.#interval.recordUs(lat)
      if (result !== 'duplicate') c.settled++
    }
    if (this.#config.scenario === 'sub' && this.#plan.count !== null && this.#received >= this.#plan.count) this.#done()
    this.#drainCheck?.()
    void topic
  }

  #onNotification(c: Conn, payload: Buffer): void {
    const now = nowUs()
    for (const m of notificationMarks(payload)) {
      if (m.seq <= c.maxNotifiedSeq || m.seq > c.seq) continue
      c.maxNotifiedSeq = m.seq
      this.#notifications++
      this.#latency.recordUs(now - m.tsUs)
      this.#interval.recordUs(now - m.tsUs)
    }
    this.#drainCheck?.()
  }

  startPublishing(): void {
    if (this.#closing) return
    this.#active = true
    if (this.#pubs.length === 0) return
    if (this.#plan.count === 0) {
      this.#done()
      return
    }
    this.#scheduler = this.#plan.rate === null ? null : new RateScheduler(this.#plan.rate, performance.now())
    this.#publishing = true
    this.#tick()
  }

  /** Resolves when this shard's share of --count is published (sub: received). Never, without --count. */
  whenDone(): Promise<void> {
    return this.#donePromise
  }

  #tick = (): void => {
    this.#timer = null
    this.#immediate = null
    if (!this.#publishing) return
    const cfg = this.#config
    const now = performance.now()
    const free = this.#pubs.length * cfg.inflight - this.#inflightTotal
    let n = this.#scheduler === null ? free : this.#scheduler.take(now, free)
    if (this.#plan.count !== null) n = Math.min(n, this.#plan.count - this.#sent)
    let progress = true
    while (n > 0 && progress) {
      progress = false
      for (let k = 0; k < this.#pubs.length && n > 0; k++) {
        const p = this.#pubs[this.#cursor]!
        this.#cursor = (this.#cursor + 1) % this.#pubs.length
        if (p.inflight >= cfg.inflight) continue
        this.#publishOne(p)
        n--
        progress = true
      }
    }
    if (this.#plan.count !== null && this.#sent >= this.#plan.count) {
      this.#publishing = false
      this.#done()
      return
    }
    if (this.#scheduler !== null) {
      this.#timer = setTimeout(this.#tick, Math.max(1, this.#scheduler.waitMs(performance.now())))
    } else if (free > 0) {
      this.#immediate = setImmediate(this.#tick)
    }
    // Unpaced and every window full: the next ack calls #kick.
  }

  #kick(): void {
    if (this.#publishing && this.#scheduler === null && this.#immediate === null) this.#immediate = setImmediate(this.#tick)
  }

  #publishOne(p: Conn): void {
    const cfg = this.#config
    const seq = ++p.seq
    const ts = nowUs()
    let topic: string
    let payload: Buffer
    if (p.spec.role === 'device') {
      const name = propertyName((seq - 1) % cfg.properties)
      topic = expandTopic(cfg.topic, { clientId: p.spec.clientId, n: p.spec.n, thingId: p.spec.thingId!, name })
      payload = fleetPayload(seq, ts)
    } else {
      topic = p.spec.topic!
      payload = encodePayload(p.spec.clientId, seq, ts, cfg.payloadSize)
    }
    p.inflight++
    this.#inflightTotal++
    this.#sent++
    this.#counters.sent++
    p.client.publish(topic, payload, { qos: cfg.qos }, (err) => {
      p.inflight--
      this.#inflightTotal--
      if (err) this.#error(`publish ${failureReason(err)}`)
      else {
        this.#acked++
        this.#counters.acked++
      }
      this.#kick()
      this.#drainCheck?.()
    })
  }

  sample(): ShardSample {
    const counters = this.#counters
    this.#counters = emptyCounters()
    const s: ShardSample = {
      counters,
      connected: this.#conns.reduce((n, c) => n + (c.up ? 1 : 0), 0),
      latencyCount: this.#interval.count,
      p99Ms: this.#interval.percentileMs(99),
    }
    this.#interval.reset()
    return s
  }

  /** Stops publishing; returns publisherId -> last sequence number published. */
  stopPublishing(): Record<string, number> {
    if (this.#active) this.#stoppedAtMs = nowMs()
    this.#active = false
    this.#publishing = false
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#immediate) clearImmediate(this.#immediate)
    this.#timer = null
    this.#immediate = null
    const out: Record<string, number> = {}
    for (const p of this.#pubs) out[p.spec.clientId] = p.seq
    return out
  }

  /**
   * Waits until publishes are acknowledged and every subscriber has what it
   * should (`expected`: subscriber -> publisher -> last seq), or timeoutMs.
   */
  drain(expected: Record<string, Record<string, number>> | null, timeoutMs: number): Promise<void> {
    this.#expected = expected
    const want = new Map<Conn, number>()
    if (expected !== null) {
      for (const s of this.#subs) {
        const e = expected[s.spec.clientId]
        if (e !== undefined) want.set(s, Object.values(e).reduce((a, b) => a + b, 0))
      }
    }
    // Devices wait for the state change of their last update, but only once an
    // engine has shown it answers at all; otherwise there is nothing to wait for.
    const devices = this.#pubs.filter((p) => p.spec.role === 'device')
    const complete = (): boolean =>
      this.#inflightTotal === 0 &&
      [...want].every(([s, n]) => s.settled >= n) &&
      (this.#notifications === 0 || devices.every((d) => d.maxNotifiedSeq >= d.seq))
    if (complete() || timeoutMs <= 0) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(finish, timeoutMs)
      function finish(): void {
        clearTimeout(timer)
        resolve()
      }
      this.#drainCheck = () => {
        if (complete()) {
          this.#drainCheck = null
          finish()
        }
      }
    }).finally(() => {
      this.#drainCheck = null
    })
  }

  report(): ShardReport {
    // A subscriber that went quiet and never heard again has a gap up to the stop.
    const stop = this.#stoppedAtMs
    if (stop !== null) {
      for (const c of this.#subs) {
        if (c.lastRecvMs === 0 || c.lastRecvMs >= stop) continue
        const gap = stop - c.lastRecvMs
        if (this.#maxGap === null || gap > this.#maxGap.ms) this.#maxGap = { ms: gap, atMs: c.lastRecvMs, clientId: c.spec.clientId }
      }
    }
    let loss = EMPTY_LOSS
    for (const s of this.#subs) {
      const exp = this.#expected?.[s.spec.clientId]
      loss = addLoss(loss, summarizeStreams(s.checker!.snapshot(), exp))
    }
    const lastSeq: Record<string, number> = {}
    for (const p of this.#pubs) lastSeq[p.spec.clientId] = p.seq
    return {
      lastSeq,
      sent: this.#sent,
      acked: this.#acked,
      behind: this.#scheduler?.behind ?? 0,
      loss,
      dropped: this.#dropped,
      latency: this.#latency.encode(),
      maxGap: this.#maxGap,
      outages: [...this.#outages],
      errors: { ...this.#errors },
      notifications: this.#notifications,
    }
  }

  async close(): Promise<void> {
    this.#closing = true
    this.stopPublishing()
    this.#done()
    await Promise.all(
      this.#conns.map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 2000)
            c.client.end(true, () => {
              clearTimeout(t)
              resolve()
            })
          }),
      ),
    )
  }
}
