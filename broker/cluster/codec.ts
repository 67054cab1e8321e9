/**
 * Wire format of a publish crossing from one node to another over the bus.
 * Binary rather than JSON/msgpack: the payload is copied once, never
 * base64-encoded, and the frame starts with a version byte so two releases can
 * share a cluster during a rolling upgrade.
 *
 *   u8 version | u8 flags (qos:2, retain:1, dup:1) | f64 brokerCounter
 *   | u16+utf8 origin | u16+utf8 brokerId | u16+utf8 topic | u16+utf8 clientId | payload...
 */
export const BUS_FRAME_VERSION = 1

export interface BusPacket {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  dup: boolean
  brokerId: string
  brokerCounter: number
  clientId?: string
}

export interface BusFrame {
  origin: string
  packet: BusPacket
}

export function encodeFrame (origin: string, p: BusPacket): Buffer {
  const o = Buffer.from(origin, 'utf8')
  const b = Buffer.from(p.brokerId ?? '', 'utf8')
  const t = Buffer.from(p.topic, 'utf8')
  const c = Buffer.from(p.clientId ?? '', 'utf8')
  const payload = typeof p.payload === 'string' ? Buffer.from(p.payload) : (p.payload ?? Buffer.alloc(0))
  const out = Buffer.allocUnsafe(10 + 8 + o.length + b.length + t.length + c.length + payload.length)
  let i = 0
  out[i++] = BUS_FRAME_VERSION
  out[i++] = (p.qos & 3) | (p.retain ? 4 : 0) | (p.dup ? 8 : 0)
  out.writeDoubleBE(p.brokerCounter ?? 0, i); i += 8
  for (const part of [o, b, t, c]) {
    out.writeUInt16BE(part.length, i); i += 2
    part.copy(out, i); i += part.length
  }
  payload.copy(out, i)
  return out
}

/** Returns null for a frame of another version or a truncated one; the caller counts it. */
export function decodeFrame (buf: Buffer): BusFrame | null {
  if (buf.length < 18 || buf[0] !== BUS_FRAME_VERSION) return null
  let i = 1
  const flags = buf[i++]
  const brokerCounter = buf.readDoubleBE(i); i += 8
  const strings: string[] = []
  for (let k = 0; k < 4; k++) {
    if (i + 2 > buf.length) return null
    const len = buf.readUInt16BE(i); i += 2
    if (i + len > buf.length) return null
    strings.push(buf.toString('utf8', i, i + len)); i += len
  }
  const [origin, brokerId, topic, clientId] = strings
  const packet: BusPacket = {
    topic,
    payload: buf.subarray(i),
    qos: (flags & 3) as 0 | 1 | 2,
    retain: (flags & 4) !== 0,
    dup: (flags & 8) !== 0,
    brokerId,
    brokerCounter,
  }
  if (clientId !== '') packet.clientId = clientId
  return { origin, packet }
}
