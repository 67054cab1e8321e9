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
  // After version, flags and brokerCounter: skip origin and brokerId.
  let i = 10
  i += 2 + buf.readUInt16BE(i)
  if (i + 2 > buf.length) return null
  i += 2 + buf.readUInt16BE(i)
  if (i + 2 > buf.length) return null
  const topicLength = buf.readUInt16BE(i)
  const topicStart = i + 2
  i = topicStart + topicLength
  if (i + 2 > buf.length) return null
  i += 2 + buf.readUInt16BE(i)
  if (i > buf.length) return null
  return { topic: buf.toString('utf8', topicStart, topicStart + topicLength), payload: buf.subarray(i), qos: (buf[1] & 3) as 0 | 1 | 2 }
}
