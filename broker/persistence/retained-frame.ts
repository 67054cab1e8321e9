import { BUS_FRAME_VERSION } from '../cluster/codec.ts'
import type { StoredRetained } from '../mqtt/retained-delivery.ts'

/**
 * A stored retained message (a bus frame, cluster/codec.ts) read for a new
 * subscription: its topic, payload and QoS, nothing else. decodeFrame makes
 * four strings per frame (origin, brokerId, topic, clientId) and two objects;
 * a retained delivery uses only the topic, and a new `#` subscriber reads
 * every frame: the three other strings were a fifth of the node's CPU on a
 * fresh node sending 10,000 retained messages (issue 8).
 *
 *   u8 version | u8 flags (qos:2, retain:1, dup:1) | f64 brokerCounter
 *   | u16+utf8 origin | u16+utf8 brokerId | u16+utf8 topic | u16+utf8 clientId | payload...
 *
 * Returns null for a frame of another version or a truncated one, as decodeFrame.
 */
export function retainedFromFrame (buf: Buffer): StoredRetained | null {
  if (buf.length < 18 || buf[0] !== BUS_FRAME_VERSION) return null
  // The u16 lengths are read byte by byte and the topic with utf8Slice, not
  // through Buffer's checked wrappers: a new `#` subscriber's node decodes
  // 10,000 frames before V8 has optimised any of it (issue 8).
  // After version, flags and brokerCounter: skip origin and brokerId.
  let i = 10
  i += 2 + u16(buf, i)
  if (i + 2 > buf.length) return null
  i += 2 + u16(buf, i)
  if (i + 2 > buf.length) return null
  const topicBytes = u16(buf, i)
  const topicStart = i + 2
  const topicEnd = topicStart + topicBytes
  if (topicEnd + 2 > buf.length) return null
  i = topicEnd + 2 + u16(buf, topicEnd)
  if (i > buf.length) return null
  return { topic: (buf as Utf8Sliceable).utf8Slice(topicStart, topicEnd), payload: buf.subarray(i), qos: (buf[1] & 3) as 0 | 1 | 2, topicBytes }
}

function u16 (buf: Buffer, i: number): number {
  return (buf[i] << 8) | buf[i + 1]
}

/** Buffer.prototype.utf8Slice: what buf.toString('utf8', start, end) calls after its checks (start and end are known good here). */
type Utf8Sliceable = Buffer & { utf8Slice(start: number, end: number): string }
