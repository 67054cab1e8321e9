import { TokenBucket } from '../auth/throttle.ts'

export type GateRefusal = 'too_many_connections' | 'too_many_from_address' | 'connect_rate'

export interface GateLimits {
  maxConnections: number
  maxConnectionsPerIp: number
  connectRatePerIp: number
}

/**
 * Admission of sockets, before any MQTT byte is read, across all listeners:
 * a cap on open connections per node and per remote address, and a token
 * bucket of new connections per address per second [S5]. A refusal costs an
 * accept and a close, and nobody else is affected.
 */
export class ConnectionGate {
  private open = 0
  private readonly perAddress = new Map<string, number>()
  private readonly buckets = new Map<string, TokenBucket>()

  constructor (private readonly limits: GateLimits) {}

  get connections (): number { return this.open }

  /** null if admitted (then `release` must follow exactly once), else the reason. */
  admit (address: string, now = Date.now()): GateRefusal | null {
    const l = this.limits
    if (l.maxConnections > 0 && this.open >= l.maxConnections) return 'too_many_connections'
    const held = this.perAddress.get(address) ?? 0
    if (l.maxConnectionsPerIp > 0 && held >= l.maxConnectionsPerIp) return 'too_many_from_address'
    if (l.connectRatePerIp > 0) {
      let b = this.buckets.get(address)
      if (!b) {
        if (this.buckets.size >= 10_000) this.prune(now)
        b = new TokenBucket(l.connectRatePerIp, l.connectRatePerIp, now)
        this.buckets.set(address, b)
      }
      if (!b.take(now)) return 'connect_rate'
    }
    this.open++
    this.perAddress.set(address, held + 1)
    return null
  }

  release (address: string): void {
    this.open--
    const held = (this.perAddress.get(address) ?? 1) - 1
    if (held <= 0) this.perAddress.delete(address); else this.perAddress.set(address, held)
  }

  private prune (now: number): void {
    for (const [a, b] of this.buckets) if (b.idle(now)) this.buckets.delete(a)
  }
}
