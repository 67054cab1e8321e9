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
export function guardSocket (conn: Duplex, limits: WireLimits, onViolation: (v: Violation, detail: string, conn: Duplex) => void): void {
  (conn as Guarded)[GUARD] = new WireGuard(conn, limits, onViolation, conn.read)
  conn.read = guardedRead as typeof conn.read
}

const GUARD = Symbol('thingmesh.wireGuard')
type Guarded = Duplex & { [GUARD]: WireGuard }

/**
 * One shared function for every guarded socket. The guard's state lives in
 * an object, not in closures: tsx (esbuild keepNames) renames every named
 * closure with defineProperty, which gives each one its own property array,
 * and per-connection closures were about 1 KB of each idle connection's
 * memory (issue 8).
 */
function guardedRead (this: Guarded, size?: number): Buffer | null {
  const g = this[GUARD]
  if (g.failed) return null
  const buf = g.read.call(this, size) as Buffer | null
  if (buf === null || g.inspect(buf)) return buf
  return null
}

class WireGuard {
  state = 0 // 0 header byte, 1 length bytes, 2 body
  type = 0
  flags = 0
  len = 0
  mult = 1
  lenBytes = 0
  remaining = 0
  packets = 0
  failed = false
  /** Inside a PUBLISH body: bytes of the topic length (2) and of the topic name still to read. */
  topicLenLeft = 0
  topicLeft = 0
  /** The topic name's pieces when it spans chunks (null otherwise). */
  topicParts: Buffer[] | null = null

  constructor (
    private readonly conn: Duplex,
    private readonly limits: WireLimits,
    /** Given the connection, so one function can serve every socket (no closure per connection). */
    private readonly onViolation: (v: Violation, detail: string, conn: Duplex) => void,
    readonly read: Duplex['read'],
  ) {}

  private fail (v: Violation, detail: string): false {
    this.failed = true
    this.onViolation(v, detail, this.conn)
    this.conn.destroy()
    return false
  }

  inspect (buf: Buffer): boolean {
    let i = 0
    while (i < buf.length) {
      if (this.state === 2 && this.topicLenLeft > 0) {
        this.topicLeft = this.topicLeft * 256 + buf[i++]
        this.remaining--
        if (--this.topicLenLeft === 0) this.topicLeft = Math.min(this.topicLeft, this.remaining)
        if (this.remaining === 0) this.state = 0
        continue
      }
      if (this.state === 2 && this.topicLeft > 0) {
        const take = Math.min(this.topicLeft, buf.length - i)
        const piece = buf.subarray(i, i + take)
        i += take
        this.remaining -= take
        this.topicLeft -= take
        if (this.topicLeft > 0) {
          (this.topicParts ??= []).push(piece)
        } else {
          const name = this.topicParts === null ? piece : Buffer.concat([...this.topicParts, piece])
          this.topicParts = null
          if (!isUtf8(name)) return this.fail('bad_utf8', 'PUBLISH topic name is not well-formed UTF-8 [MQTT-1.5.3-1]')
        }
        if (this.remaining === 0) this.state = 0
        continue
      }
      if (this.state === 2) {
        const take = Math.min(this.remaining, buf.length - i)
        i += take
        this.remaining -= take
        if (this.remaining === 0) this.state = 0
        continue
      }
      const b = buf[i++]
      if (this.state === 0) {
        const type = this.type = b >> 4
        const flags = this.flags = b & 15
        if (type === 0 || type === 15) return this.fail('reserved_type', `packet type ${type} is reserved [MQTT-2.2.1]`)
        if (this.packets === 0 && type !== 1) return this.fail('first_not_connect', 'the first packet must be CONNECT [MQTT-3.1.0-1]')
        if ((type === 8 || type === 10 || type === 6) && flags !== 2) return this.fail('bad_flags', 'SUBSCRIBE, UNSUBSCRIBE and PUBREL need flags 0010 [MQTT-3.8.1-1]')
        if (type === 3 && (flags & 6) === 6) return this.fail('bad_flags', 'PUBLISH with QoS 3 [MQTT-3.3.1-4]')
        this.state = 1; this.len = 0; this.mult = 1; this.lenBytes = 0
        this.topicLenLeft = 0; this.topicLeft = 0; this.topicParts = null
        continue
      }
      this.len += (b & 127) * this.mult
      this.lenBytes++
      if (b & 128) {
        if (this.lenBytes === 4) return this.fail('bad_length', 'remaining length longer than 4 bytes')
        this.mult *= 128
        continue
      }
      const len = this.len
      const type = this.type
      const limit = this.packets === 0 ? this.limits.maxConnectPacketSize : this.limits.maxPacketSize
      if (1 + this.lenBytes + len > limit) return this.fail('too_large', `packet of ${1 + this.lenBytes + len} bytes over the limit of ${limit}`)
      if ((type === 8 || type === 10) && len <= 2) return this.fail('empty_subscription', 'SUBSCRIBE/UNSUBSCRIBE without a topic filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]')
      if (this.packets === 0 && refusesEmptyClientId(buf, i, len)) {
        // [MQTT-3.1.3-8] must be answered with CONNACK 0x02, but mqtt-packet's
        // parser rejects this CONNECT outright and aedes would close silently.
        this.failed = true
        this.onViolation('empty_client_id', 'empty client id with clean session 0 [MQTT-3.1.3-8]', this.conn)
        this.conn.end(CONNACK_IDENTIFIER_REJECTED)
        return false
      }
      this.packets++
      if (len === 0) this.state = 0; else { this.state = 2; this.remaining = len }
      if (type === 3 && len > 0) { this.topicLenLeft = 2; this.topicLeft = 0 }
    }
    return true
  }
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
