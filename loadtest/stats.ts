// Latency histograms and their summaries. Values are recorded in
// microseconds and reported in milliseconds. Pure apart from the HDR
// histogram's own memory.

import * as hdr from 'hdr-histogram-js'

/** One hour in µs: anything slower is clamped rather than dropped. */
const HIGHEST_US = 3_600_000_000

export interface PercentileSummary {
  readonly count: number
  readonly minMs: number
  readonly meanMs: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

export const EMPTY_PERCENTILES: PercentileSummary = Object.freeze({
  count: 0,
  minMs: 0,
  meanMs: 0,
  p50Ms: 0,
  p90Ms: 0,
  p99Ms: 0,
  p999Ms: 0,
  maxMs: 0,
})

export class LatencyHistogram {
  readonly #h: hdr.Histogram

  constructor(h?: hdr.Histogram) {
    this.#h =
      h ??
      hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: HIGHEST_US,
        numberOfSignificantValueDigits: 3,
      })
  }

  static decode(encoded: string): LatencyHistogram {
    return new LatencyHistogram(hdr.decodeFromCompressedBase64(encoded, 32, false))
  }

  recordUs(us: number): void {
    // Clock steps can produce negative latencies across threads; count them
    // as the smallest value instead of losing the sample.
    const v = us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : Math.round(us)
    this.#h.recordValue(v)
  }

  add(other: LatencyHistogram): void {
    this.#h.add(other.#h)
  }

  reset(): void {
    this.#h.reset()
  }

  get count(): number {
    return this.#h.totalCount
  }

  percentileMs(p: number): number {
    return this.#h.totalCount === 0 ? 0 : this.#h.getValueAtPercentile(p) / 1000
  }

  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.#h)
  }

  summary(): PercentileSummary {
    return summarizeHistogram(this.#h)
  }
}

export function summarizeHistogram(h: hdr.Histogram): PercentileSummary {
  if (h.totalCount === 0) return EMPTY_PERCENTILES
  const ms = (us: number): number => Math.round(us) / 1000
  return {
    count: h.totalCount,
    minMs: ms(h.minNonZeroValue),
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  }
}

/** Per-interval counters a shard reports once a second. */
export interface IntervalCounters {
  sent: number
  acked: number
  received: number
  errors: number
  connects: number
  disconnects: number
}

export function emptyCounters(): IntervalCounters {
  return { sent: 0, acked: 0, received: 0, errors: 0, connects: 0, disconnects: 0 }
}

export function addCounters(into: IntervalCounters, c: IntervalCounters): IntervalCounters {
  into.sent += c.sent
  into.acked += c.acked
  into.received += c.received
  into.errors += c.errors
  into.connects += c.connects
  into.disconnects += c.disconnects
  return into
}
