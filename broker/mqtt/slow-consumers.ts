import type { Writable } from 'node:stream'
import { aedesClientPrototype } from './aedes-client.ts'

/**
 * One subscriber that stops reading must not slow down everyone else (chaos
 * R8). aedes completes a delivery only when the subscriber's socket drains,
 * and the broker finishes a publish only when every delivery completed; a
 * frozen subscriber therefore held every publish that matched it until
 * drainTimeout, and with them the publishers and all other subscribers
 * (p99 6.5 s in R8). Here a delivery completes once it is handed to the
 * socket; the drain timer still disconnects a client whose socket stays full.
 * What a client has not read is bounded per client instead: once its socket
 * has stayed full for FULL_GRACE_MS with more than `maxClientBufferBytes`
 * unsent, QoS 0 messages to it are dropped and a QoS 1/2 message disconnects
 * it (a persistent session keeps the message in its queue and gets it on
 * reconnect), as Mosquitto's max_queued_bytes. The grace lets a reader take a
 * burst (a replay after a pub/sub cut, many retained messages) that is
 * larger than the cap but drains at once.
 */

/** How long a socket must have stayed full before its client counts as slow. */
const FULL_GRACE_MS = 1000

export type ShedAction = 'qos0_dropped' | 'disconnected'

/** What the guard reads from aedes' broker options (set in node.ts). */
export interface SlowConsumerOptions {
  maxClientBufferBytes?: number
  onSlowConsumer?: (clientId: string, action: ShedAction, bufferedBytes: number) => void
}

export interface GuardedClient {
  id: string
  broker?: { opts?: SlowConsumerOptions & { drainTimeout?: number } } & Record<symbol, unknown>
  conn: Writable
  _drainTimer: NodeJS.Timeout | null
  /** Since when the socket has been full (its last write returned false, no 'drain' yet). */
  _fullSince?: number
  _onDrainBound?: () => void
  _handleDrain(): void
  _handleDrainTimeout(): void
  waitForDrain(callback: (err: Error | null, client: unknown) => void): void
}


let installed = false

/** Patches aedes' Client once per process; only brokers marked with `marker` are affected. */
export function installSlowConsumerGuard (marker: symbol): void {
  if (installed) return
  installed = true
  const proto = aedesClientPrototype as GuardedClient
  const original = proto.waitForDrain
  proto.waitForDrain = function waitForDrainWithoutBlocking (this: GuardedClient, callback) {
    if (this.broker?.[marker] !== true) { original.call(this, callback); return }
    socketFull(this)
    setImmediate(callback, null, this)
  }
}

/**
 * A write to the client's socket returned false: from now until 'drain' it
 * counts as full (see `shedSlowConsumer`), and the drain timer runs. What
 * aedes' waitForDrain does, without holding up the delivery.
 */
export function socketFull (client: GuardedClient): void {
  if (client._fullSince === undefined) {
    client._fullSince = Date.now()
    client.conn.once('drain', () => { client._fullSince = undefined })
  }
  const ms = client.broker?.opts?.drainTimeout ?? 0
  if (ms > 0 && !client._drainTimer) {
    client._onDrainBound ??= client._handleDrain.bind(client)
    client.conn.once('drain', client._onDrainBound)
    client._drainTimer = setTimeout(client._handleDrainTimeout.bind(client), ms)
    client._drainTimer.unref()
  }
}

/**
 * Called before a PUBLISH is written to a client of a marked broker. Returns
 * true when the packet must not be written (dropped, or the client is being
 * disconnected).
 */
export function shedSlowConsumer (client: GuardedClient, stream: Writable, packet: { qos?: number }): boolean {
  const cap = client.broker?.opts?.maxClientBufferBytes ?? 0
  if (cap <= 0 || stream.writableLength <= cap) return false
  // Full only briefly: a burst, not a slow reader.
  if (client._fullSince === undefined || Date.now() - client._fullSince < FULL_GRACE_MS) return false
  const action: ShedAction = (packet.qos ?? 0) === 0 ? 'qos0_dropped' : 'disconnected'
  client.broker?.opts?.onSlowConsumer?.(client.id, action, stream.writableLength)
  if (action === 'disconnected' && !stream.destroyed) stream.destroy(new Error(`slow consumer: ${stream.writableLength} bytes unsent (--max-client-buffer-bytes)`))
  return true
}
