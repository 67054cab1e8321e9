import type { Writable } from 'node:stream'

/**
 * aedes delivers each publish from its own setImmediate, and mqtt-packet
 * uncorks on the next tick, so every delivered message cost one writev
 * syscall: a fifth of a subscriber node's CPU under fan-in (issue 8). A
 * socket written to is held corked until `flushCorked`, called at the end of
 * a batch of deliveries (mqtt/delivery.ts) or, at the latest, by the next
 * turn's setImmediate: the deliveries of one turn leave in one write per
 * socket.
 *
 * Small encoded packets (`writeHeld`) are not even handed to the socket one
 * by one: each Writable#write costs a buffered-request object and its
 * completion, which under fan-out was more than the packet's encoding. They
 * are joined and written as one chunk when the socket is flushed, before
 * anything else is written to it (`flushHeld`), or as soon as they would
 * fill its buffer, so the socket's own backpressure ('drain') is unchanged.
 */

interface Held { chunks: Buffer[], bytes: number }

/** Sockets held corked, with the bytes not yet handed to them. */
const corked = new Map<Writable, Held>()
let flushScheduled = false

export function holdCork (stream: Writable): Held {
  let h = corked.get(stream)
  if (h !== undefined) return h
  stream.cork()
  h = { chunks: [], bytes: 0 }
  corked.set(stream, h)
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(scheduledFlush)
  }
  return h
}

/**
 * Queues an encoded packet for the socket; returns what `stream.write`
 * would: false once the socket's buffer is full (then the bytes are handed
 * over at once, so it emits 'drain' when it empties).
 */
export function writeHeld (stream: Writable, chunk: Buffer): boolean {
  if (stream.destroyed) return false
  const h = holdCork(stream)
  h.chunks.push(chunk)
  h.bytes += chunk.length
  // Already full (a write returned false, no 'drain' yet): it will emit 'drain', and the bytes can wait for the flush.
  if (stream.writableNeedDrain) return false
  if (stream.writableLength + h.bytes < stream.writableHighWaterMark) return true
  return handOver(stream, h)
}

/** Hands the socket what `writeHeld` queued for it; call before writing anything else to it. */
export function flushHeld (stream: Writable): void {
  const h = corked.get(stream)
  if (h !== undefined && h.chunks.length > 0) handOver(stream, h)
}

function handOver (stream: Writable, h: Held): boolean {
  const chunk = h.chunks.length === 1 ? h.chunks[0] : Buffer.concat(h.chunks, h.bytes)
  h.chunks = []
  h.bytes = 0
  if (stream.destroyed) return false
  return stream.write(chunk)
}

function scheduledFlush (): void {
  flushScheduled = false
  flushCorked()
}

/** Hands over what is queued and uncorks every socket held corked: it all leaves now. */
export function flushCorked (): void {
  if (corked.size === 0) return
  const held = [...corked]
  corked.clear()
  // One failing socket must not leave the others corked for good.
  for (const [s, h] of held) {
    try {
      if (h.chunks.length > 0) handOver(s, h)
      s.uncork()
    } catch { /* its own error path closes it */ }
  }
}
