/**
 * Hand-written MQTT 3.1.1 packets and a counting parser, for benchmarks that
 * hold tens of thousands of connections: an MQTT.js client each would make
 * the bench process, not the broker, the limit (and mqtt-packet's parser
 * allocates an object per PUBLISH, which a counter does not need).
 */

/** MQTT's variable-length "remaining length" (MQTT-2.2.3). */
function remainingLength (n: number): number[] {
  const out: number[] = []
  do {
    let b = n % 128
    n = Math.floor(n / 128)
    if (n > 0) b |= 0x80
    out.push(b)
  } while (n > 0)
  return out
}

function str (s: string): Buffer {
  const b = Buffer.from(s)
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function packet (first: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([first, ...remainingLength(body.length)]), body])
}

/** CONNECT, clean session, no credentials. */
export function connectPacket (clientId: string, keepaliveS: number): Buffer {
  return packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, keepaliveS >> 8, keepaliveS & 0xff]), str(clientId)]))
}

/** SUBSCRIBE to one filter (fixed-header flags 0b0010 are required, MQTT-3.8.1-1). */
export function subscribePacket (packetId: number, filter: string, qos: 0 | 1): Buffer {
  return packet(0x82, Buffer.concat([Buffer.from([packetId >> 8, packetId & 0xff]), str(filter), Buffer.from([qos])]))
}

/** QoS0 PUBLISH. */
export function publishPacket (topic: string, payload: Buffer): Buffer {
  return packet(0x30, Buffer.concat([str(topic), payload]))
}

export const PINGREQ = Buffer.from([0xc0, 0x00])

export const TYPE = { connack: 2, publish: 3, suback: 9, pingresp: 13 } as const

/**
 * Splits a byte stream into packets. PUBLISH bodies are skipped (only
 * counted through `onPacket(3, null)`); other bodies are handed over whole.
 */
export function packetReader (onPacket: (type: number, body: Buffer | null) => void): (chunk: Buffer) => void {
  let stage: 'header' | 'length' | 'body' = 'header'
  let type = 0
  let length = 0
  let multiplier = 1
  let need = 0
  let parts: Buffer[] = []
  const end = (): void => {
    onPacket(type, type === TYPE.publish ? null : Buffer.concat(parts))
    parts = []
    stage = 'header'
  }
  return (chunk) => {
    let i = 0
    while (i < chunk.length) {
      if (stage === 'header') {
        type = chunk[i++] >> 4
        length = 0
        multiplier = 1
        stage = 'length'
      } else if (stage === 'length') {
        const b = chunk[i++]
        length += (b & 0x7f) * multiplier
        multiplier *= 128
        if (b & 0x80) continue
        need = length
        if (need === 0) end()
        else stage = 'body'
      } else {
        const take = Math.min(need, chunk.length - i)
        if (type !== TYPE.publish) parts.push(chunk.subarray(i, i + take))
        i += take
        need -= take
        if (need === 0) end()
      }
    }
  }
}
