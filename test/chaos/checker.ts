// The message checker: which acknowledged messages each subscriber received,
// twice, or out of order, and how late. Payloads are `publisherId:seq:sendTs`
// (loadtest's format). Loss is "acked by the broker but never received", so a
// message whose publisher never got PUBACK is not counted either way.
import { SequenceChecker, LatencyHistogram, decodePayload, type PercentileSummary } from '../../loadtest/index.ts'

/** What publishers were told: per publisher, the sequence numbers acknowledged. */
export class AckLog {
  readonly acked = new Map<string, Set<number>>()
  sent = 0
  refused = 0
  /** Wall times (ms) of every ack, per publisher, for "first PUBACK after the fault". */
  readonly ackTimes = new Map<string, number[]>()

  ack (publisherId: string, seq: number, atMs: number): void {
    let s = this.acked.get(publisherId)
    if (!s) { s = new Set(); this.acked.set(publisherId, s); this.ackTimes.set(publisherId, []) }
    s.add(seq)
    this.ackTimes.get(publisherId)!.push(atMs)
  }

  get totalAcked (): number {
    let n = 0
    for (const s of this.acked.values()) n += s.size
    return n
  }

  /** First ack time strictly after `t` for a publisher, or null. */
  firstAckAfter (publisherId: string, t: number): number | null {
    for (const x of this.ackTimes.get(publisherId) ?? []) if (x > t) return x
    return null
  }
}

export type SubscriberClass = 'clean' | 'persistent'

export interface ClassReport {
  subscriber: string
  cls: SubscriberClass
  acked: number
  received: number
  lost: number
  duplicates: number
  outOfOrder: number
  latency: PercentileSummary
  /** Example lost messages, `publisher:seq`. */
  lostSample: string[]
}

/** One subscriber's view. `live` latency excludes the replay after a final reconnect. */
export class SubscriberRecord {
  readonly seen = new Map<string, Set<number>>()
  readonly order = new SequenceChecker()
  readonly latency = new LatencyHistogram()
  received = 0
  foreign = 0
  recordLatency = true
  lastAt = 0

  constructor (readonly name: string, readonly cls: SubscriberClass) {}

  record (payload: Buffer, nowUs: number): void {
    const d = decodePayload(payload)
    this.lastAt = Date.now()
    if (!d) { this.foreign++; return }
    this.received++
    let s = this.seen.get(d.publisherId)
    if (!s) { s = new Set(); this.seen.set(d.publisherId, s) }
    s.add(d.seq)
    this.order.record(d.publisherId, d.seq)
    if (this.recordLatency) this.latency.recordUs(nowUs - d.sendTsUs)
  }

  report (acks: AckLog, publishers?: ReadonlySet<string>): ClassReport {
    let acked = 0
    let lost = 0
    const lostSample: string[] = []
    for (const [pub, seqs] of acks.acked) {
      if (publishers && !publishers.has(pub)) continue
      const got = this.seen.get(pub)
      for (const seq of seqs) {
        acked++
        if (!got?.has(seq)) {
          lost++
          if (lostSample.length < 10) lostSample.push(`${pub}:${seq}`)
        }
      }
    }
    const summary = this.order.summary()
    return { subscriber: this.name, cls: this.cls, acked, received: this.received, lost, duplicates: summary.duplicates, outOfOrder: summary.outOfOrder, latency: this.latency.summary(), lostSample }
  }
}
