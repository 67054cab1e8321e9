import { isUtf8 } from 'node:buffer'
import type { Duplex } from 'node:stream'

export interface WireLimits {
  /** Largest packet (fixed header included) before CONNECT has been accepted. */
  maxConnectPacketSize: number
  maxPacketSize: number
}

export type Violation = 'reserved_type' | 'first_not_connect' | 'bad_length' | 'too_large' | 'bad_flags' | 'empty_subscription' | 'empty_client_id' | 'bad_utf8'

/**
 * Watches the bytes aedes reads from a socket and cuts the connection the
 * moment a fixed header is invalid or declares a packet over the limit, so the
 * body is never buffered (a 268 MB CONNECT costs nothing). aedes' parser only
 * sees chunks this guard let through. It reads fixed headers only; the body
 * is skipped by count, so the cost is a few comparisons per chunk. The one
 * body field it reads is a PUBLISH topic name, to check its UTF-8: mqtt-packet
 * decodes it with replacement characters, so after parsing an ill-formed
 * name can no longer be told from a well-formed one holding U+FFFD.
 */
export function guardSocket (conn: Duplex, limits: WireLimits, onViolation: (v: Violation, detail: string) => void): void {
  let state = 0 // 0 header byte, 1 length bytes, 2 body
  let type = 0
  let flags = 0
  let len = 0
  let mult = 1
  let lenBytes = 0
  let remaining = 0
  let packets = 0
  let failed = false
  /** Inside a PUBLISH body: bytes of the topic length (2) and of the topic name still to read. */
  let topicLenLeft = 0
  let topicLeft = 0
  let topicParts: Buffer[] = []

  const fail = (v: Violation, detail: string): false => {
    failed = true
    onViolation(v, detail)
    conn.destroy()
    return false
  }

  const inspect = (buf: Buffer): boolean => {
    let i = 0
    while (i < buf.length) {
      if (state === 2 && topicLenLeft > 0) {
        topicLeft = topicLeft * 256 + buf[i++]
        remaining--
        if (--topicLenLeft === 0) topicLeft = Math.min(topicLeft, remaining)
        if (remaining === 0) state = 0
        continue
      }
      if (state === 2 && topicLeft > 0) {
        const take = Math.min(topicLeft, buf.length - i)
        topicParts.push(buf.subarray(i, i + take))
        i += take
        remaining -= take
        topicLeft -= take
        if (topicLeft === 0) {
          const name = topicParts.length === 1 ? topicParts[0] : Buffer.concat(topicParts)
          topicParts = []
          if (!isUtf8(name)) return fail('bad_utf8', 'PUBLISH topic name is not well-formed UTF-8 [MQTT-1.5.3-1]')
        }
        if (remaining === 0) state = 0
        continue
      }
      if (state === 2) {
        const take = Math.min(remaining, buf.length - i)
        i += take
        remaining -= take
        if (remaining === 0) state = 0
        continue
      }
      const b = buf[i++]
      if (state === 0) {
        type = b >> 4
        flags = b & 15
        if (type === 0 || type === 15) return fail('reserved_type', `packet type ${type} is reserved [MQTT-2.2.1]`)
        if (packets === 0 && type !== 1) return fail('first_not_connect', 'the first packet must be CONNECT [MQTT-3.1.0-1]')
        if ((type === 8 || type === 10 || type === 6) && flags !== 2) return fail('bad_flags', 'SUBSCRIBE, UNSUBSCRIBE and PUBREL need flags 0010 [MQTT-3.8.1-1]')
        if (type === 3 && (flags & 6) === 6) return fail('bad_flags', 'PUBLISH with QoS 3 [MQTT-3.3.1-4]')
        state = 1; len = 0; mult = 1; lenBytes = 0
        topicLenLeft = 0; topicLeft = 0; topicParts = []
        continue
      }
      len += (b & 127) * mult
      lenBytes++
      if (b & 128) {
        if (lenBytes === 4) return fail('bad_length', 'remaining length longer than 4 bytes')
        mult *= 128
        continue
      }
      const limit = packets === 0 ? limits.maxConnectPacketSize : limits.maxPacketSize
      if (1 + lenBytes + len > limit) return fail('too_large', `packet of ${1 + lenBytes + len} bytes over the limit of ${limit}`)
      if ((type === 8 || type === 10) && len <= 2) return fail('empty_subscription', 'SUBSCRIBE/UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]')
      if (packets === 0 && refusesEmptyClientId(buf, i, len)) {
        // [MQTT-3.1.3-8] must be answered with CONNACK 0x02, but mqtt-packet's
        // parser rejects this CONNECT outright and aedes would close silently.
        failed = true
        onViolation('empty_client_id', 'empty client id with clean session 0 [MQTT-3.1.3-8]')
        conn.end(CONNACK_IDENTIFIER_REJECTED)
        return false
      }
      packets++
      if (len === 0) state = 0; else { state = 2; remaining = len }
      if (type === 3 && len > 0) { topicLenLeft = 2; topicLeft = 0 }
    }
    return true
  }

  const read = conn.read
  conn.read = function guardedRead (this: Duplex, size?: number) {
    if (failed) return null
    const buf = read.call(this, size) as Buffer | null
    if (buf === null || inspect(buf)) return buf
    return null
  } as typeof conn.read
}

const CONNACK_IDENTIFIER_REJECTED = Buffer.from([0x20, 0x02, 0x00, 0x02])

/** Reads a CONNECT's flags and client id length, if the chunk holds that far. */
function refusesEmptyClientId (buf: Buffer, start: number, len: number): boolean {
  if (start + 2 > buf.length) return false
  const nameLen = buf.readUInt16BE(start)
  const flagsAt = start + 2 + nameLen + 1
  const idLenAt = flagsAt + 3
  if (idLenAt + 2 > buf.length || idLenAt + 2 > start + len) return false
  const cleanSession = (buf[flagsAt] & 0x02) !== 0
  return !cleanSession && buf.readUInt16BE(idLenAt) === 0
}
