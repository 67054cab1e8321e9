/** Drops of one client not reported yet, and when it was last reported. */
interface Pending { at: number, unreported: number }

/**
 * Turns queue-cap drops into at most one report per client per `windowMs`,
 * each with the number dropped since the previous one. A subscriber that
 * never acknowledges, flooded at a few thousand messages a second, dropped
 * one message per publish and the node logged each (chaos S6: a quarter of
 * the bytes the node allocated in that phase were those log lines). The
 * first drop of a quiet client is reported at once; the rest of a burst
 * when its window ends.
 */
export class DropReports {
  private readonly pending = new Map<string, Pending>()
  private timer: NodeJS.Timeout | null = null

  constructor (
    private readonly windowMs: number,
    private readonly report: (clientId: string, dropped: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  dropped (clientId: string, n: number): void {
    const t = this.now()
    const p = this.pending.get(clientId)
    if (p === undefined || (p.unreported === 0 && t - p.at >= this.windowMs)) {
      this.pending.set(clientId, { at: t, unreported: 0 })
      this.report(clientId, n)
    } else {
      p.unreported += n
    }
    this.arm()
  }

  /** Reports what each window that has ended held back; forgets quiet clients. */
  flush (): void {
    this.timer = null
    const t = this.now()
    for (const [clientId, p] of this.pending) {
      if (t - p.at < this.windowMs) continue
      if (p.unreported === 0) { this.pending.delete(clientId); continue }
      const n = p.unreported
      p.at = t
      p.unreported = 0
      this.report(clientId, n)
    }
    this.arm()
  }

  close (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
  }

  private arm (): void {
    if (this.timer !== null || this.pending.size === 0) return
    this.timer = setTimeout(() => this.flush(), this.windowMs)
    this.timer.unref()
  }
}
