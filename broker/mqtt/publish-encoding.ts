/**
 * Many PUBLISH packets of MQTT 3.1/3.1.1 encoded into one Buffer, for a
 * burst to one client (a new subscription's retained messages): one
 * allocation and one socket write per chunk instead of mqtt-packet's five
 * writes per packet. The bytes are mqtt-packet's (test/unit/publish-encoding).
 * MQTT 5 packets carry properties: those go through mqtt-packet.
 */

export interface EncodablePublish { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, dup: boolean, messageId?: number }

/** [MQTT-2.2.3] largest Remaining Length a 4-byte variable length integer holds. */
export const MAX_REMAINING_LENGTH = 268_435_455

/** Bytes the Remaining Length `remaining` takes on the wire (1-4). */
export function remainingLengthBytes (remaining: number): number {
  return remaining < 0x80 ? 1 : remaining < 0x4000 ? 2 : remaining < 0x200000 ? 3 : 4
}

/** Writes MQTT's variable-length Remaining Length at `o`; returns the offset after it. */
export function writeRemainingLength (buf: Buffer, o: number, remaining: number): number {
  let n = remaining
  do {
    let byte = n % 0x80
    n = Math.floor(n / 0x80)
    if (n > 0) byte |= 0x80
    buf[o++] = byte
  } while (n > 0)
  return o
}

/**
 * Bytes of the packet on the wire, given its topic's UTF-8 length; -1 when
 * it cannot be encoded (a topic over 65,535 bytes [MQTT-1.5.3], a packet over
 * the protocol's limit).
 */
export function publishLength (topicBytes: number, p: EncodablePublish): number {
  if (topicBytes > 0xffff) return -1
  const remaining = 2 + topicBytes + (p.qos > 0 ? 2 : 0) + p.payload.length
  if (remaining > MAX_REMAINING_LENGTH) return -1
  return 1 + remainingLengthBytes(remaining) + remaining
}

/**
 * `packets` (each with its topic's UTF-8 length and `publishLength`) in one
 * Buffer of `total` bytes. Bytes are stored directly, the topic with
 * utf8Write and the payload with Uint8Array's set, not through Buffer's
 * checked wrappers (writeUInt16BE, write, copy: several JavaScript calls
 * each): a new `#` subscriber's 10,000 retained messages are encoded before
 * V8 has optimised any of it (issue 8). The lengths were checked by
 * publishLength.
 */
export function encodePublishes (packets: EncodablePublish[], topicBytes: number[], total: number): Buffer {
  const buf = Buffer.allocUnsafe(total) as Utf8Writable
  let o = 0
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i]
    const t = topicBytes[i]
    const payload = p.payload
    buf[o++] = 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0)
    o = writeRemainingLength(buf, o, 2 + t + (p.qos > 0 ? 2 : 0) + payload.length)
    buf[o++] = t >> 8
    buf[o++] = t & 0xff
    o += buf.utf8Write(p.topic, o, t)
    if (p.qos > 0) {
      buf[o++] = p.messageId! >> 8
      buf[o++] = p.messageId! & 0xff
    }
    buf.set(payload, o)
    o += payload.length
  }
  return buf
}

/** Buffer.prototype.utf8Write: what buf.write(string, offset, length, 'utf8') calls after its checks. */
type Utf8Writable = Buffer & { utf8Write(s: string, offset: number, length: number): number }
