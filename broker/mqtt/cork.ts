import type { Writable } from 'node:stream'

/**
 * aedes delivers each publish from its own setImmediate, and mqtt-packet
 * uncorks on the next tick, so every delivered message cost one writev
 * syscall: a fifth of a subscriber node's CPU under fan-in (issue 8). A
 * socket written to is held corked until `flushCorked`, called at the end of
 * a batch of deliveries (mqtt/delivery.ts) or, at the latest, by the next
 * turn's setImmediate: the deliveries of one turn leave in one write per
 * socket.
 */

const corked = new Set<Writable>()
let flushScheduled = false

export function holdCork (stream: Writable): void {
  if (corked.has(stream)) return
  stream.cork()
  corked.add(stream)
  if (flushScheduled) return
  flushScheduled = true
  setImmediate(scheduledFlush)
}

function scheduledFlush (): void {
  flushScheduled = false
  flushCorked()
}

/** Uncorks every socket held corked: what was written to them leaves now. */
export function flushCorked (): void {
  if (corked.size === 0) return
  const streams = [...corked]
  corked.clear()
  // One failing socket must not leave the others corked for good.
  for (const s of streams) { try { s.uncork() } catch { /* its own error path closes it */ } }
}
