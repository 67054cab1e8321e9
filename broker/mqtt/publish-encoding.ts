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

/** `packets` (each with its topic's UTF-8 length and `publishLength`) in one Buffer of `total` bytes. */
export function encodePublishes (packets: EncodablePublish[], topicBytes: number[], total: number): Buffer {
  const buf = Buffer.allocUnsafe(total)
  let o = 0
  for (let i = 0; i < packets.length; i++) {
    const p = packets[i]
    const t = topicBytes[i]
    buf[o++] = 0x30 | (p.dup ? 0x08 : 0) | (p.qos << 1) | (p.retain ? 0x01 : 0)
    o = writeRemainingLength(buf, o, 2 + t + (p.qos > 0 ? 2 : 0) + p.payload.length)
    buf.writeUInt16BE(t, o)
    o += 2
    o += buf.write(p.topic, o, t, 'utf8')
    if (p.qos > 0) {
      buf.writeUInt16BE(p.messageId!, o)
      o += 2
    }
    o += p.payload.copy(buf, o)
  }
  return buf
}
