/**
 * Failed logins per remote address in fixed one-minute windows [S3]. An
 * address over the limit is refused without a password check until its window
 * ends, so guessing costs the attacker time and costs us nothing. The table is
 * bounded: at the cap, expired windows are dropped, then the oldest.
 */
export class FailureThrottle {
  private readonly windows = new Map<string, { start: number, failures: number }>()

  constructor (private readonly perMinute: number, private readonly maxAddresses = 50_000, private readonly windowMs = 60_000) {}

  blocked (address: string, now = Date.now()): boolean {
    const w = this.windows.get(address)
    if (!w) return false
    if (now - w.start >= this.windowMs) { this.windows.delete(address); return false }
    return w.failures >= this.perMinute
  }

  fail (address: string, now = Date.now()): void {
    let w = this.windows.get(address)
    if (!w || now - w.start >= this.windowMs) {
      w = { start: now, failures: 0 }
      this.windows.delete(address)
      this.windows.set(address, w)
    }
    w.failures++
    if (this.windows.size > this.maxAddresses) this.prune(now)
  }

  private prune (now: number): void {
    for (const [a, w] of this.windows) if (now - w.start >= this.windowMs) this.windows.delete(a)
    while (this.windows.size > this.maxAddresses) this.windows.delete(this.windows.keys().next().value as string)
  }
}

/** Token bucket: `rate` per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number
  private at: number
  constructor (private readonly rate: number, private readonly burst: number, now = Date.now()) {
    this.tokens = burst
    this.at = now
  }

  take (now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.rate / 1000)
    this.at = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  /** True once the bucket is full again: the entry can be forgotten. */
  idle (now = Date.now()): boolean {
    return this.tokens + (now - this.at) * this.rate / 1000 >= this.burst
  }
}
