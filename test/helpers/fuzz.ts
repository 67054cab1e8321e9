// The seeded packet-level mutation fuzzer shared by test/integration/fuzz.test.ts
// (against a node process) and the S10 chaos row (against a node in-process):
// valid MQTT packets mutated by bit flips, byte swaps, truncation, wrong
// lengths, flags and types, and splices. The same seed gives the same inputs.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { generate(p: object): Buffer }

export interface Fuzzer {
  seed: number
  rnd(): number
  /** One mutation of `b` (a new buffer). */
  mutate(b: Buffer): Buffer
  /** The bytes of one attacker session: a (maybe mutated) CONNECT, 1-5 (mostly mutated) packets, then a PINGREQ. */
  session(clientId: string): Buffer
}

export function makeFuzzer (seed: number): Fuzzer {
  let state = seed >>> 0 || 1
  const rnd = (): number => { state ^= state << 13; state >>>= 0; state ^= state >>> 17; state ^= state << 5; state >>>= 0; return state / 0x100000000 }
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)]
  const int = (n: number): number => Math.floor(rnd() * n)
  const corpus: Buffer[] = [
    { cmd: 'publish', topic: 'fuzz/a', payload: Buffer.from('hello'), qos: 0 },
    { cmd: 'publish', topic: 'fuzz/b/c', payload: Buffer.alloc(300, 1), qos: 1, messageId: 7, retain: true },
    { cmd: 'publish', topic: 'fuzz/q2', payload: Buffer.from('x'), qos: 2, messageId: 9 },
    { cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'fuzz/#', qos: 1 }, { topic: '+/x', qos: 2 }] },
    { cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['fuzz/#'] },
    { cmd: 'puback', messageId: 1 }, { cmd: 'pubrec', messageId: 2 }, { cmd: 'pubrel', messageId: 9 }, { cmd: 'pubcomp', messageId: 2 },
    { cmd: 'pingreq' }, { cmd: 'disconnect' },
  ].map((p) => mqttPacket.generate(p))
  const connectPacket = (id: string): Buffer => mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: rnd() < 0.8, clientId: id, keepalive: 10, ...(rnd() < 0.2 ? { will: { topic: 'fuzz/will', payload: Buffer.from('w'), qos: 1, retain: false } } : {}) })
  const pingreq = mqttPacket.generate({ cmd: 'pingreq' })

  function mutate (b: Buffer): Buffer {
    const out = Buffer.from(b)
    switch (int(8)) {
      case 0: for (let i = 0; i < 1 + int(4); i++) out[int(out.length)] ^= 1 << int(8); return out // bit flips
      case 1: out[int(out.length)] = int(256); return out // byte replace
      case 2: return out.subarray(0, int(out.length)) // truncate
      case 3: if (out.length > 1) out[1] = int(256); return out // wrong remaining length
      case 4: out[0] = (out[0] & 0xf0) | int(16); return out // wrong flags
      case 5: out[0] = (int(16) << 4) | (out[0] & 0x0f); return out // wrong type (incl. reserved 0 and 15)
      case 6: return Buffer.concat([out, Buffer.from([0xff, 0xff, 0xff, 0x7f])]) // huge length appended
      default: { const other = pick(corpus); const cut = int(out.length); return Buffer.concat([out.subarray(0, cut), other.subarray(int(other.length))]) } // splice
    }
  }

  return {
    seed,
    rnd,
    mutate,
    session (clientId) {
      const parts = [rnd() < 0.7 ? connectPacket(clientId) : mutate(connectPacket(clientId))]
      for (let i = 0; i < 1 + int(5); i++) parts.push(rnd() < 0.15 ? pick(corpus) : mutate(pick(corpus)))
      parts.push(pingreq)
      return Buffer.concat(parts)
    },
  }
}
