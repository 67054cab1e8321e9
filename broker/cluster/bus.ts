import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import { decodeFrame, encodeFrame, type BusPacket } from './codec.ts'

const require = createRequire(import.meta.url)
// mqemitter is CommonJS without types; this is the surface aedes relies on.
const mqemitter = require('mqemitter') as (opts: object) => LocalEmitter

type Listener = (packet: any, done: () => void) => void
interface LocalEmitter {
  on(topic: string, fn: Listener, done?: () => void): unknown
  removeListener(topic: string, fn: Listener, done?: () => void): unknown
  emit(packet: any, done?: (err?: Error) => void): unknown
  close(done: () => void): void
}

export interface BusStats {
  sent: number
  received: number
  dropped: number
  malformed: number
}

/**
 * The message bus aedes sees as its `mq` (the mqemitter interface).
 *
 * Local-first: a publish is delivered to this node's subscribers in-process,
 * and forwarded once to the other nodes through a Redis channel. The emit
 * callback fires only after Redis accepted the forward, so a QoS1 PUBACK
 * (sent after the publish chain completes, see mqtt/acks.ts) means the message
 * left this node. Broker-internal `$SYS/` traffic (heartbeats, new-client
 * notices) stays local: cluster membership and session takeover have their own
 * protocol in cluster/, which clients cannot forge.
 *
 * Redis only carries one channel per cluster, never one per topic filter, so
 * topics with Redis glob characters need no escaping and Redis does no pattern
 * matching per publish.
 */
export class ClusterBus {
  readonly stats: BusStats = { sent: 0, received: 0, dropped: 0, malformed: 0 }
  private readonly local: LocalEmitter
  private closed = false

  constructor (
    private readonly origin: string,
    private readonly channel: string,
    private readonly pub: Redis | null,
    concurrency: number,
  ) {
    this.local = mqemitter({ concurrency, matchEmptyLevels: true })
  }

  on (topic: string, fn: Listener, done?: () => void): this {
    this.local.on(topic, fn, done)
    return this
  }

  removeListener (topic: string, fn: Listener, done?: () => void): this {
    this.local.removeListener(topic, fn, done)
    return this
  }

  emit (packet: BusPacket & { cmd?: string }, done?: (err?: Error) => void): void {
    const cb = done ?? noop
    if (this.closed) { cb(new Error('bus closed')); return }
    if (this.pub === null || packet.topic.startsWith('$SYS/')) {
      this.local.emit(packet, cb)
      return
    }
    let pending = 2
    let failed: Error | undefined
    const finish = (err?: Error | null): void => {
      if (err && !failed) failed = err
      if (--pending === 0) cb(failed)
    }
    this.local.emit(packet, finish)
    this.pub.publish(this.channel, encodeFrame(this.origin, packet)).then(
      () => { this.stats.sent++; finish() },
      (err: Error) => {
        this.stats.dropped++
        // QoS0 has no acknowledgement to withhold: local delivery stands.
        finish(packet.qos > 0 ? err : null)
      },
    )
  }

  /** Entry point for frames arriving from the Redis channel. */
  receive (frame: Buffer): void {
    const decoded = decodeFrame(frame)
    if (decoded === null) { this.stats.malformed++; return }
    if (decoded.origin === this.origin) return
    this.stats.received++
    const p = decoded.packet as BusPacket & { cmd: string, messageId?: number }
    p.cmd = 'publish'
    this.local.emit(p, noop)
  }

  close (done: () => void): void {
    this.closed = true
    this.local.close(done)
  }
}

function noop (): void {}
