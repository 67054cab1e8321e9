import { MAX_REMAINING_LENGTH, remainingLengthBytes, writeRemainingLength } from './publish-encoding.ts'

/**
 * A PUBLISH fanned out to many subscribers is nearly the same bytes for every
 * one of them (MQTT 3.1.1: no per-client properties), yet mqtt-packet
 * serialised it again per subscriber, in five or six writes each (header,
 * length, topic length, topic as a string, packet id, payload) plus a cork
 * and a nextTick: under fan-out most of the write path's CPU and garbage
 * (issue 8). The header and topic are encoded once per publish:
 * - at QoS 0 the bytes are the same for everyone: the same Buffer is written
 *   to every socket;
 * - at QoS 1/2 only the packet id differs: each subscriber's bytes are the
 *   shared prefix, its id and the payload, copied into one Buffer.
 *
 * aedes wraps each delivery in new packet objects, so a publish is recognised
 * by its payload Buffer (shared by reference through every wrapper), topic and
 * flags. The cache holds one publish per QoS and is dropped at the end of the
 * event-loop turn: the deliveries of one publish run in one turn, and a large
 * payload is not kept alive after them.
 */

/** Payloads up to this size are copied next to their header (one chunk per write); larger ones are written by reference after it. */
const INLINE_PAYLOAD_BYTES = 2048
const EMPTY = Buffer.alloc(0)

interface Cached { payload: Buffer, topic: string, flags: number, prefix: Buffer, encoded: EncodedPublish | null }

/** One entry per QoS: a fan-out to subscribers granted different QoS alternates between them. */
const cached: Array<Cached | null> = [null, null, null]
let dropScheduled = false

export interface Publish { topic?: unknown, payload?: unknown, qos?: number, retain?: boolean, dup?: boolean, messageId?: unknown }

/** A PUBLISH's bytes: `head` then, unless it was small enough to be copied into `head`, `payload`. */
export interface EncodedPublish { head: Buffer, payload: Buffer | null }

/**
 * A PUBLISH as mqtt-packet writes it for protocol level 4, or `undefined`
 * when the packet is not one this module encodes (then mqtt-packet must
 * write it, and throw if it is invalid). At QoS 0 the result is shared by
 * every caller of the turn: never write into it.
 */
export function encodePublish (packet: Publish, opts?: { protocolVersion?: number }): EncodedPublish | undefined {
  const qos = packet.qos ?? 0
  // MQTT 5 adds properties to the packet; aedes writes 3.1.1 without options.
  if (typeof packet.topic !== 'string' || opts?.protocolVersion === 5 || (qos !== 0 && qos !== 1 && qos !== 2)) return undefined
  const id = packet.messageId
  // [MQTT-2.3.1-1] a QoS 1/2 PUBLISH carries a non-zero packet id.
  if (qos > 0 && (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > 0xffff)) return undefined
  const payload = packet.payload === undefined || packet.payload === null ? EMPTY : packet.payload
  if (!Buffer.isBuffer(payload)) return undefined
  // mqtt-packet's PUBLISH_HEADER: 0x30, DUP 0x08, QoS << 1, RETAIN 0x01 (it keeps a DUP flag even at QoS 0).
  const flags = 0x30 | (packet.dup === true ? 0x08 : 0) | (qos << 1) | (packet.retain === true ? 0x01 : 0)
  let e = cached[qos]
  if (e === null || e.payload !== payload || e.topic !== packet.topic || e.flags !== flags) {
    const prefix = encodePrefix(flags, packet.topic, payload, qos > 0)
    if (prefix === null) return undefined
    e = cached[qos] = { payload, topic: packet.topic, flags, prefix, encoded: null }
    if (qos === 0) e.encoded = { head: prefix, payload: payload.length <= INLINE_PAYLOAD_BYTES ? null : payload }
    if (!dropScheduled) { dropScheduled = true; setImmediate(dropCache) }
  }
  if (e.encoded !== null) return e.encoded
  return withPacketId(e.prefix, id as number, payload)
}

function dropCache (): void {
  cached[0] = cached[1] = cached[2] = null
  dropScheduled = false
}

/**
 * Fixed header, Remaining Length and topic; at QoS 0 also the payload when
 * small (the whole packet). Null past the protocol's size limits.
 */
function encodePrefix (flags: number, topic: string, payload: Buffer, withId: boolean): Buffer | null {
  const topicBytes = Buffer.byteLength(topic)
  // A topic's length prefix is 16 bits [MQTT-1.5.3].
  if (topicBytes > 0xffff) return null
  const remaining = 2 + topicBytes + (withId ? 2 : 0) + payload.length
  if (remaining > MAX_REMAINING_LENGTH) return null
  const inline = !withId && payload.length <= INLINE_PAYLOAD_BYTES
  const buf = Buffer.allocUnsafe(1 + remainingLengthBytes(remaining) + 2 + topicBytes + (inline ? payload.length : 0))
  let o = 0
  buf[o++] = flags
  o = writeRemainingLength(buf, o, remaining)
  buf.writeUInt16BE(topicBytes, o)
  o += 2
  o += buf.write(topic, o, 'utf8')
  if (inline) payload.copy(buf, o)
  return buf
}

/** One subscriber's QoS 1/2 PUBLISH: the shared prefix, its packet id, the payload (inside when small). */
function withPacketId (prefix: Buffer, id: number, payload: Buffer): EncodedPublish {
  const inline = payload.length <= INLINE_PAYLOAD_BYTES
  const head = Buffer.allocUnsafe(prefix.length + 2 + (inline ? payload.length : 0))
  prefix.copy(head, 0)
  head.writeUInt16BE(id, prefix.length)
  if (!inline) return { head, payload }
  payload.copy(head, prefix.length + 2)
  return { head, payload: null }
}
