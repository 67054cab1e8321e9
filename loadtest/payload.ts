// Payload format shared with the chaos harness:
//   publisherId:seq:sendTs[:padding]
// publisherId has no ':'; seq is a positive integer starting at 1; sendTs is
// the send time in integer microseconds since the Unix epoch (a wall clock,
// so publishers and subscribers in different threads or processes on one
// host agree on it).

export interface DecodedPayload {
  readonly publisherId: string
  readonly seq: number
  readonly sendTsUs: number
}

const COLON = 0x3a

export function encodePayload(publisherId: string, seq: number, sendTsUs: number, size = 0): Buffer {
  const head = `${publisherId}:${seq}:${Math.round(sendTsUs)}`
  if (size <= head.length) return Buffer.from(head)
  // Padding keeps the message at the requested size; the extra ':' marks where
  // it starts so decoders can ignore it.
  const buf = Buffer.alloc(size, 0x78)
  buf.write(head, 0, 'latin1')
  buf[head.length] = COLON
  return buf
}

/** Returns null for payloads that are not in this format (foreign traffic). */
export function decodePayload(payload: Uint8Array): DecodedPayload | null {
  const c1 = payload.indexOf(COLON)
  if (c1 <= 0) return null
  const c2 = payload.indexOf(COLON, c1 + 1)
  if (c2 < 0) return null
  let c3 = payload.indexOf(COLON, c2 + 1)
  if (c3 < 0) c3 = payload.length
  const publisherId = Buffer.from(payload.buffer, payload.byteOffset, c1).toString('latin1')
  const seq = parseDigits(payload, c1 + 1, c2)
  const sendTsUs = parseDigits(payload, c2 + 1, c3)
  if (seq === null || seq < 1 || sendTsUs === null) return null
  return { publisherId, seq, sendTsUs }
}

function parseDigits(buf: Uint8Array, start: number, end: number): number | null {
  if (end <= start || end - start > 16) return null
  let n = 0
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30
    if (d < 0 || d > 9) return null
    n = n * 10 + d
  }
  return n
}

/** Microseconds since the epoch with sub-millisecond resolution. */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000)
}
