// Stored formats of the records other nodes read back: partition log entries
// and outbox batches (docs/engine.md "Stored formats").
//
// Format 1, read and written by every release: an entry is seven stream
// fields (t, k, p, v, n, o, d) and an outbox batch is a JSON array of
// messages, whose payloads (JSON themselves) are escaped once more inside it.
// Format 2: an entry is one field `e2` holding the seven values behind their
// lengths, and an outbox batch is a string of length-prefixed records. Both
// are built by concatenation, with nothing escaped, and an entry comes back
// from XREAD as two strings instead of fourteen.
//
// Every release that knows format 2 reads both. Which one a node writes is the
// cluster's choice (RedisStore, `eng:format`), so that during a rolling
// upgrade no older node is handed a record it cannot read.

import type { EntryFields, EntryKind, LogEntry } from './entries.ts'
import type { OutMessage } from './batch.ts'

export type StoreFormat = 1 | 2
/** The newest format this release reads and writes. */
export const LATEST_FORMAT: StoreFormat = 2

/** Stream field of a format-2 entry: a name no format-1 entry has, so either reader tells them apart. */
export const PACKED_ENTRY_FIELD = 'e2'

/**
 * `k|n|d|len(t)|len(p)|len(o)|` then t, p, o and v unseparated: lengths
 * rather than separators because thing ids, client ids and payloads may hold
 * any character. Lengths are UTF-16 units, which Redis' UTF-8 round trip
 * keeps (a lone surrogate becomes U+FFFD, one unit as well).
 */
export function packEntry (e: EntryFields): string {
  return `${e.k}|${e.n}|${e.d}|${e.t.length}|${e.p.length}|${e.o.length}|${e.t}${e.p}${e.o}${e.v}`
}

/** Entry kinds this release knows (entries.ts EntryKind). */
export const ENTRY_KINDS: ReadonlySet<string> = new Set(['w', 'r', 'd', 'tick', 'ack'])

/** A packed entry's fields; undefined if the value is not one (a damaged or foreign record). */
export function unpackEntry (id: string, s: string): LogEntry | undefined {
  const a = s.indexOf('|')
  const b = s.indexOf('|', a + 1)
  const c = s.indexOf('|', b + 1)
  const d = s.indexOf('|', c + 1)
  const e = s.indexOf('|', d + 1)
  const f = s.indexOf('|', e + 1)
  if (a < 0 || b < 0 || c < 0 || d < 0 || e < 0 || f < 0) return undefined
  const k = s.slice(0, a)
  const n = Number(s.slice(a + 1, b))
  const depth = Number(s.slice(b + 1, c))
  const tl = Number(s.slice(c + 1, d))
  const pl = Number(s.slice(d + 1, e))
  const ol = Number(s.slice(e + 1, f))
  const t0 = f + 1
  const p0 = t0 + tl
  const o0 = p0 + pl
  const v0 = o0 + ol
  if (!ENTRY_KINDS.has(k) || !Number.isFinite(n) || !(tl >= 0 && pl >= 0 && ol >= 0) || v0 > s.length) return undefined
  return { id, t: s.slice(t0, p0), k: k as EntryKind, p: s.slice(p0, o0), v: s.slice(v0), n, o: s.slice(o0, v0), d: Number.isFinite(depth) ? depth : 0 }
}

/** How many strings entryFields gives per entry in a format (the width ingest.lua and commit.lua read an entry by). */
export function entryWidth (format: StoreFormat): string {
  return format === 2 ? '2' : '14'
}

/** The stream field/value list of an entry in the given format (XADD's arguments after the id). */
export function entryFields (e: EntryFields, format: StoreFormat): string[] {
  if (format === 2) return [PACKED_ENTRY_FIELD, packEntry(e)]
  return ['t', e.t, 'k', e.k, 'p', e.p, 'v', e.v, 'n', String(e.n), 'o', e.o, 'd', String(e.d)]
}

/**
 * Format 2 outbox batch: `2` then one record per message, in order:
 * `m<qos><retain 0|1><len(topic)>|<len(payload)>|<topic><payload>`, or for a
 * state reference (payload rendered when published)
 * `s<qos><retain 0|1><len(topic)>|<len(id)>|<len(thingId)>|<topic><id><thingId>`.
 * A format-1 batch is a JSON array, so it starts with `[`.
 */
export function encodeOutbox (batch: readonly OutMessage[], format: StoreFormat): string {
  if (format === 1) return JSON.stringify(batch)
  let s = '2'
  for (const m of batch) {
    const r = m.retain ? 1 : 0
    if (m.stateRef !== undefined) {
      const { id, thingId } = m.stateRef
      s += `s${m.qos}${r}${m.topic.length}|${id.length}|${thingId.length}|${m.topic}${id}${thingId}`
    } else {
      s += `m${m.qos}${r}${m.topic.length}|${m.payload.length}|${m.topic}${m.payload}`
    }
  }
  return s
}

/** A stored outbox batch of either format; throws on a damaged one. */
export function decodeOutbox (s: string): OutMessage[] {
  if (s.startsWith('[')) return JSON.parse(s) as OutMessage[]
  if (!s.startsWith('2')) throw new Error('unknown outbox format')
  const out: OutMessage[] = []
  let i = 1
  const num = (): number => {
    const bar = s.indexOf('|', i)
    if (bar < 0) throw new Error('damaged outbox record')
    const n = Number(s.slice(i, bar))
    if (!Number.isSafeInteger(n) || n < 0) throw new Error('damaged outbox record')
    i = bar + 1
    return n
  }
  const take = (n: number): string => {
    if (i + n > s.length) throw new Error('damaged outbox record')
    const v = s.slice(i, i + n)
    i += n
    return v
  }
  while (i < s.length) {
    const kind = s[i]
    const qos = Number(s[i + 1])
    const retain = s[i + 2] === '1'
    if ((kind !== 'm' && kind !== 's') || !(qos === 0 || qos === 1 || qos === 2)) throw new Error('damaged outbox record')
    i += 3
    if (kind === 'm') {
      const tl = num()
      const pl = num()
      const topic = take(tl)
      out.push({ topic, payload: take(pl), qos, retain })
    } else {
      const tl = num()
      const il = num()
      const hl = num()
      const topic = take(tl)
      const id = take(il)
      out.push({ topic, payload: '', qos, retain, stateRef: { id, thingId: take(hl) } })
    }
  }
  return out
}
