import { MAX_REMAINING_LENGTH, remainingLengthBytes, writeRemainingLength } from './publish-encoding.ts'

/**
 * A QoS 0 PUBLISH fanned out to many subscribers is the same bytes for every
 * one of them (MQTT 3.1.1: no packet id, no per-client properties), yet
 * mqtt-packet serialised it again per subscriber, in five writes each (header,
 * length, topic length, topic as a string, payload) plus a cork and a
 * nextTick: under fan-out most of the write path's CPU and garbage (issue 8).
 * The header and topic are encoded once per publish and the same Buffer is
 * written to every socket.
 *
 * aedes wraps each delivery in new packet objects, so a publish is recognised
 * by its payload Buffer (shared by reference through every wrapper), topic and
 * flags. The cache holds one publish and is dropped at the end of the
 * event-loop turn: the deliveries of one publish run in one turn, and a large
 * payload is not kept alive after them.
 */

/** Payloads up to this size are copied next to their header (one chunk per write); larger ones are written by reference after it. */
const INLINE_PAYLOAD_BYTES = 2048
const EMPTY = Buffer.alloc(0)

interface Cached { payload: Buffer, topic: string, flags: number, encoded: EncodedQos0 }

let cached: Cached | null = null
let dropScheduled = false

export interface Qos0Publish { topic?: unknown, payload?: unknown, qos?: number, retain?: boolean, dup?: boolean }

/** A PUBLISH's bytes: `head` then, unless it was small enough to be copied into `head`, `payload`. */
export interface EncodedQos0 { head: Buffer, payload: Buffer | null }

/**
 * A QoS 0 PUBLISH as mqtt-packet writes it for protocol level 4, or
 * `undefined` when the packet is not one this module encodes (then
 * mqtt-packet must write it).
 */
export function encodeQos0 (packet: Qos0Publish, opts?: { protocolVersion?: number }): EncodedQos0 | undefined {
  // MQTT 5 adds properties to the packet; aedes writes 3.1.1 without options.
  if ((packet.qos ?? 0) !== 0 || typeof packet.topic !== 'string' || opts?.protocolVersion === 5) return undefined
  const payload = packet.payload === undefined || packet.payload === null ? EMPTY : packet.payload
  if (!Buffer.isBuffer(payload)) return undefined
  // mqtt-packet's PUBLISH_HEADER: 0x30, DUP 0x08, RETAIN 0x01 (it keeps a DUP flag even at QoS 0).
  const flags = 0x30 | (packet.dup === true ? 0x08 : 0) | (packet.retain === true ? 0x01 : 0)
  let e = cached
  if (e === null || e.payload !== payload || e.topic !== packet.topic || e.flags !== flags) {
    const head = encodeHead(flags, packet.topic, payload)
    if (head === null) return undefined
    e = cached = { payload, topic: packet.topic, flags, encoded: { head, payload: payload.length <= INLINE_PAYLOAD_BYTES ? null : payload } }
    if (!dropScheduled) { dropScheduled = true; setImmediate(dropCache) }
  }
  return e.encoded
}

function dropCache (): void {
  cached = null
  dropScheduled = false
}

/** Fixed header, Remaining Length, topic (and the payload when small); null past the protocol's size limit. */
function encodeHead (flags: number, topic: string, payload: Buffer): Buffer | null {
  const topicBytes = Buffer.byteLength(topic)
  // A topic's length prefix is 16 bits [MQTT-1.5.3].
  if (topicBytes > 0xffff) return null
  const remaining = 2 + topicBytes + payload.length
  if (remaining > MAX_REMAINING_LENGTH) return null
  const inline = payload.length <= INLINE_PAYLOAD_BYTES
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
