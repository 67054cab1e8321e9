// Token-bucket pacing for a total message rate. Pure: the caller passes the
// clock, so tests drive it without timers.
//
// When senders fall behind (a broker stalls, clients are reconnecting) the
// bucket holds at most `maxBurst` tokens: after an outage the tool resumes at
// the configured rate instead of flooding the cluster with the backlog. The
// tokens thrown away are counted as `behind` so the summary shows it.

export class RateScheduler {
  readonly ratePerSec: number | null
  readonly maxBurst: number
  /** Tokens are derived from the time since origin, not accumulated per call, so rounding does not drift. */
  #originMs: number
  #granted = 0
  #behind = 0

  /** ratePerSec null means unpaced: `take` always grants what is asked. */
  constructor(ratePerSec: number | null, startMs: number, maxBurst?: number) {
    if (ratePerSec !== null && !(ratePerSec > 0)) throw new RangeError('rate must be > 0')
    this.ratePerSec = ratePerSec
    this.maxBurst = maxBurst ?? (ratePerSec === null ? Infinity : Math.max(1, Math.ceil(ratePerSec)))
    this.#originMs = startMs
  }

  /** Number of messages that may be sent now, at most `want`. */
  take(nowMs: number, want = Infinity): number {
    if (this.ratePerSec === null) return want
    const n = Math.min(Math.floor(this.#available(nowMs)), want)
    this.#granted += n
    return n
  }

  /** Milliseconds until at least one token is available (0 if now). */
  waitMs(nowMs: number): number {
    if (this.ratePerSec === null) return 0
    const avail = this.#available(nowMs)
    if (avail >= 1) return 0
    return Math.ceil(((1 - avail) * 1000) / this.ratePerSec)
  }

  /** Tokens discarded because the bucket overflowed while senders were stuck. */
  get behind(): number {
    return Math.floor(this.#behind)
  }

  #available(nowMs: number): number {
    const rate = this.ratePerSec!
    const avail = ((nowMs - this.#originMs) * rate) / 1000 - this.#granted
    if (avail <= this.maxBurst) return avail
    // Move the origin forward so exactly maxBurst remains.
    const excess = avail - this.maxBurst
    this.#behind += excess
    this.#originMs += (excess * 1000) / rate
    return this.maxBurst
  }
}

/** Splits `total` into `parts` integers that differ by at most one. */
export function splitEven(total: number, parts: number): number[] {
  const base = Math.floor(total / parts)
  const extra = total - base * parts
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0))
}
