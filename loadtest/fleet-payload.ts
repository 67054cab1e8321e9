// Device property payloads and how their send times are found again in the
// engine's state notifications. Pure.
//
// A property value is a JSON object {"value":<number>,"seq":<n>,"ts":<µs>}.
// The engine stores whatever JSON a device sends, so whatever shape its
// state notification has, the object comes back somewhere inside it; we
// look for every {seq, ts} pair at any depth rather than assume a layout.

export interface UpdateMark {
  readonly seq: number
  readonly tsUs: number
}

export function fleetPayload(seq: number, tsUs: number): Buffer {
  // A plausible sensor reading that changes with every update.
  const value = Math.round((20 + 5 * Math.sin(seq / 10)) * 100) / 100
  return Buffer.from(JSON.stringify({ value, seq, ts: tsUs }))
}

export function notificationMarks(payload: Uint8Array): UpdateMark[] {
  let doc: unknown
  try {
    doc = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch {
    return []
  }
  const out: UpdateMark[] = []
  const walk = (v: unknown, depth: number): void => {
    if (depth > 8 || v === null || typeof v !== 'object') return
    if (Array.isArray(v)) {
      for (const x of v) walk(x, depth + 1)
      return
    }
    const o = v as Record<string, unknown>
    if (typeof o.seq === 'number' && typeof o.ts === 'number') out.push({ seq: o.seq, tsUs: o.ts })
    for (const x of Object.values(o)) walk(x, depth + 1)
  }
  walk(doc, 0)
  return out.sort((a, b) => a.seq - b.seq)
}
