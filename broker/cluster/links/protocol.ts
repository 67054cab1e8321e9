import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Wire format of a node-to-node link (cluster/links/). Every frame is
 *
 *   u32 length (of what follows) | u8 type | body
 *
 * A link is one TCP connection from a sender (the node that opened it) to a
 * receiver (the listener). It opens with a mutual HMAC handshake on the
 * cluster secret, each side proving it holds the secret over both sides'
 * nonces and both broker ids:
 *
 *   sender   -> HELLO     u8 LINK_VERSION | 16 B sender nonce | u16+utf8 from | u16+utf8 to
 *   receiver -> CHALLENGE 16 B receiver nonce | 32 B proof('R')
 *   sender   -> AUTH      32 B proof('S')
 *   receiver -> READY
 *
 * Then the sender writes BATCH (a bus batch, cluster/codec.ts), ACKED_BATCH
 * and SYNC frames; the receiver answers SYNC with SYNCED once every batch
 * before it was handed to the bus, and writes MARKER_ACK when a marker this
 * sender published through Redis reached it (cluster/links/router.ts
 * explains both).
 *
 * ACKED_BATCH is a batch holding QoS 1 publishes: the receiver numbers them
 * 1, 2, 3, ... on each connection and, once it has delivered every one up to
 * n locally, writes BATCH_ACK with n (u32, modulo 2^32; cumulative, so the
 * acks of one turn share one frame). The sender completes their publishers'
 * waits only then; an ack naming a batch it never sent, or one already
 * acknowledged, closes the link.
 */
export const LINK_VERSION = 1

export const FrameType = {
  HELLO: 0x10,
  CHALLENGE: 0x11,
  AUTH: 0x12,
  READY: 0x13,
  BATCH: 0x01,
  SYNC: 0x02,
  SYNCED: 0x03,
  MARKER_ACK: 0x04,
  ACKED_BATCH: 0x05,
  BATCH_ACK: 0x06,
} as const

/** Largest frame before authentication (the handshake frames are well under it). */
export const HANDSHAKE_MAX_FRAME = 1024
/**
 * Largest frame a receiver accepts after authentication. A sender puts a
 * batch on a link only up to LINK_MAX_BATCH (larger ones take Redis), well
 * below it, so nodes with different --max-packet-size still agree.
 */
export const LINK_MAX_FRAME = 16 * 1024 * 1024
export const LINK_MAX_BATCH = 4 * 1024 * 1024

const NONCE = 16
const PROOF = 32

export function frameHeader (type: number, bodyLength: number): Buffer {
  const h = Buffer.allocUnsafe(5)
  h.writeUInt32BE(bodyLength + 1, 0)
  h[4] = type
  return h
}

export function frame (type: number, body: Buffer = EMPTY): Buffer {
  return Buffer.concat([frameHeader(type, body.length), body])
}

export function tokenFrame (type: number, token: number): Buffer {
  const b = Buffer.allocUnsafe(9)
  b.writeUInt32BE(5, 0)
  b[4] = type
  b.writeUInt32BE(token >>> 0, 5)
  return b
}

const EMPTY = Buffer.alloc(0)

const U32 = 0x1_0000_0000

/**
 * How many batches a BATCH_ACK newly acknowledges: its u32 count against the
 * `acked` and `sent` totals of the connection (plain numbers, they outgrow
 * 32 bits on a long-lived link). 0 means the ack is bad: it names a batch
 * not sent yet, or one acknowledged already (a receiver never repeats one).
 */
export function newlyAcked (wire: number, acked: number, sent: number): number {
  const n = (wire - (acked % U32) + U32) % U32
  return n > 0 && n <= sent - acked ? n : 0
}

export interface Hello { version: number, nonce: Buffer, from: string, to: string }

export function encodeHello (h: Hello): Buffer {
  const f = Buffer.from(h.from, 'utf8')
  const t = Buffer.from(h.to, 'utf8')
  const body = Buffer.allocUnsafe(1 + NONCE + 2 + f.length + 2 + t.length)
  let i = 0
  body[i++] = h.version
  h.nonce.copy(body, i); i += NONCE
  body.writeUInt16BE(f.length, i); i += 2
  f.copy(body, i); i += f.length
  body.writeUInt16BE(t.length, i); i += 2
  t.copy(body, i)
  return frame(FrameType.HELLO, body)
}

export function decodeHello (body: Buffer): Hello | null {
  if (body.length < 1 + NONCE + 4) return null
  let i = 0
  const version = body[i++]
  const nonce = body.subarray(i, i + NONCE); i += NONCE
  const fl = body.readUInt16BE(i); i += 2
  if (i + fl + 2 > body.length) return null
  const from = body.toString('utf8', i, i + fl); i += fl
  const tl = body.readUInt16BE(i); i += 2
  if (i + tl !== body.length) return null
  const to = body.toString('utf8', i, i + tl)
  if (from === '' || to === '') return null
  return { version, nonce, from, to }
}

export function encodeChallenge (nonce: Buffer, proof: Buffer): Buffer {
  return frame(FrameType.CHALLENGE, Buffer.concat([nonce, proof]))
}

export function decodeChallenge (body: Buffer): { nonce: Buffer, proof: Buffer } | null {
  if (body.length !== NONCE + PROOF) return null
  return { nonce: body.subarray(0, NONCE), proof: body.subarray(NONCE) }
}

/** role 'S' is the sender's proof, 'R' the receiver's: one can never be replayed as the other. */
export function proof (secret: Buffer, role: 'S' | 'R', senderNonce: Buffer, receiverNonce: Buffer, from: string, to: string): Buffer {
  return createHmac('sha256', secret)
    .update(`thingmesh-link/${LINK_VERSION}/${role}/`)
    .update(senderNonce).update(receiverNonce)
    .update(`${from.length}:${from}/${to.length}:${to}`)
    .digest()
}

export function proofMatches (expected: Buffer, got: Buffer): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got)
}

export const NONCE_BYTES = NONCE

/**
 * Splits a byte stream into frames. A frame announced longer than `max`, or
 * empty, makes push() return false: the caller closes the connection. Chunks
 * of a frame that spans several reads are joined once, when it is complete.
 */
export class FrameReader {
  private parts: Buffer[] = []
  private partBytes = 0
  /** Length (header included) of the frame being gathered, 0 until its header is in. */
  private need = 0

  constructor (public max: number) {}

  /** Calls onFrame per complete frame; onFrame returns false to stop (the connection is being closed). */
  push (chunk: Buffer, onFrame: (type: number, body: Buffer) => boolean): boolean {
    let data = chunk
    if (this.partBytes > 0) {
      this.parts.push(chunk)
      this.partBytes += chunk.length
      if (this.need === 0 && this.partBytes >= 4) {
        const head = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts)
        const len = head.readUInt32BE(0)
        if (len < 1 || len > this.max) return false
        this.need = 4 + len
        this.parts = [head]
      }
      if (this.need === 0 || this.partBytes < this.need) return true
      data = Buffer.concat(this.parts, this.partBytes)
      this.parts = []
      this.partBytes = 0
      this.need = 0
    }
    let i = 0
    while (data.length - i >= 4) {
      const len = data.readUInt32BE(i)
      if (len < 1 || len > this.max) return false
      if (data.length - i - 4 < len) {
        this.need = 4 + len
        break
      }
      const type = data[i + 4]
      const body = data.subarray(i + 5, i + 4 + len)
      i += 4 + len
      if (!onFrame(type, body)) return false
    }
    if (i < data.length) {
      this.parts = [data.subarray(i)]
      this.partBytes = data.length - i
    }
    return true
  }
}
