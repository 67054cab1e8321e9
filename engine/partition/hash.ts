// Thing -> partition. FNV-1a (32 bit) over the UTF-8 bytes of the id: simple,
// identical on every node and every Node version, and spreads short ids with
// common prefixes ("pump-1", "pump-2") well enough for modulo placement.

import { EngineError } from '../errors.ts'

const encoder = new TextEncoder()

export function fnv1a32 (text: string): number {
  let h = 0x811c9dc5
  // Thing ids are ASCII (engine/model/schema.ts), whose UTF-8 bytes are the
  // char codes: hashed without encoding (a Uint8Array per device write).
  let i = 0
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) break
    h ^= c
    h = Math.imul(h, 0x01000193)
  }
  if (i === text.length) return h >>> 0
  h = 0x811c9dc5
  for (const b of encoder.encode(text)) {
    h ^= b
    // Multiply by the FNV prime 16777619 within 32 bits.
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export function checkPartitionCount (n: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > 65_536) {
    throw new EngineError('ENGINE_INVALID_ARGUMENT', `partition count must be an integer 1..65536, got ${n}`)
  }
}

export function partitionOf (thingId: string, partitionCount: number): number {
  checkPartitionCount(partitionCount)
  return fnv1a32(thingId) % partitionCount
}
