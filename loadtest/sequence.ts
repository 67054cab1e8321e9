// Sequence checking for one receiver: which messages of each publisher's
// stream arrived, twice, or out of order. Pure (no I/O, no clocks) so the
// chaos harness can reuse it.
//
// Memory is proportional to the number of open gaps, not to the number of
// messages: a stream keeps its highest sequence seen and a sorted list of
// missing ranges below it. New gaps are always appended at the end, so the
// common cases (in-order delivery, a tail of losses) are O(1).

export interface StreamSnapshot {
  /** Highest sequence number seen. */
  readonly maxSeen: number
  /** Sequence numbers below maxSeen never received. */
  readonly missing: number
  readonly received: number
  readonly duplicates: number
  readonly outOfOrder: number
}

export type RecordResult = 'in-order' | 'out-of-order' | 'duplicate'

export interface LossSummary {
  readonly received: number
  readonly unique: number
  readonly duplicates: number
  readonly outOfOrder: number
  /** Messages expected but never received (gaps plus the missing tail). */
  readonly lost: number
  /** Messages from publishers not in `expected` (other runs, other tools). */
  readonly foreign: number
}

interface Stream {
  maxSeen: number
  /** Sorted, disjoint, inclusive [from, to] ranges of missing sequences. */
  gaps: number[]
  missing: number
  received: number
  duplicates: number
  outOfOrder: number
}

export class SequenceChecker {
  readonly #streams = new Map<string, Stream>()

  record(publisherId: string, seq: number): RecordResult {
    let s = this.#streams.get(publisherId)
    if (s === undefined) {
      s = { maxSeen: 0, gaps: [], missing: 0, received: 0, duplicates: 0, outOfOrder: 0 }
      this.#streams.set(publisherId, s)
    }
    s.received++
    if (seq > s.maxSeen) {
      if (seq > s.maxSeen + 1) {
        s.gaps.push(s.maxSeen + 1, seq - 1)
        s.missing += seq - 1 - s.maxSeen
      }
      s.maxSeen = seq
      return 'in-order'
    }
    const i = findGap(s.gaps, seq)
    if (i < 0) {
      s.duplicates++
      return 'duplicate'
    }
    fillGap(s.gaps, i, seq)
    s.missing--
    s.outOfOrder++
    return 'out-of-order'
  }

  snapshot(): Record<string, StreamSnapshot> {
    const out: Record<string, StreamSnapshot> = {}
    for (const [id, s] of this.#streams) {
      out[id] = {
        maxSeen: s.maxSeen,
        missing: s.missing,
        received: s.received,
        duplicates: s.duplicates,
        outOfOrder: s.outOfOrder,
      }
    }
    return out
  }

  /** See {@link summarizeStreams}. */
  summary(expected?: ReadonlyMap<string, number> | Record<string, number>): LossSummary {
    return summarizeStreams(this.snapshot(), expected)
  }
}

/**
 * Loss against what publishers say they sent. `expected` maps publisherId to
 * the last sequence number it published. Without it only gaps count as lost,
 * since a missing tail cannot be told apart from a publisher that stopped.
 */
export function summarizeStreams(
  streams: Record<string, StreamSnapshot>,
  expected?: ReadonlyMap<string, number> | Record<string, number>,
): LossSummary {
  const exp = expected === undefined ? undefined : expected instanceof Map ? expected : new Map(Object.entries(expected))
  let received = 0
  let duplicates = 0
  let outOfOrder = 0
  let lost = 0
  let foreign = 0
  for (const [id, s] of Object.entries(streams)) {
    if (exp !== undefined && !exp.has(id)) {
      foreign += s.received
      continue
    }
    received += s.received
    duplicates += s.duplicates
    outOfOrder += s.outOfOrder
    lost += s.missing
    const last = exp?.get(id)
    if (last !== undefined && last > s.maxSeen) lost += last - s.maxSeen
  }
  if (exp !== undefined) {
    for (const [id, last] of exp) if (streams[id] === undefined) lost += last
  }
  return { received, unique: received - duplicates, duplicates, outOfOrder, lost, foreign }
}

export function addLoss(a: LossSummary, b: LossSummary): LossSummary {
  return {
    received: a.received + b.received,
    unique: a.unique + b.unique,
    duplicates: a.duplicates + b.duplicates,
    outOfOrder: a.outOfOrder + b.outOfOrder,
    lost: a.lost + b.lost,
    foreign: a.foreign + b.foreign,
  }
}

export const EMPTY_LOSS: LossSummary = Object.freeze({
  received: 0,
  unique: 0,
  duplicates: 0,
  outOfOrder: 0,
  lost: 0,
  foreign: 0,
})

/** Index (even) of the gap range containing seq, or -1. Binary search. */
function findGap(gaps: number[], seq: number): number {
  let lo = 0
  let hi = gaps.length / 2 - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const from = gaps[mid * 2]!
    const to = gaps[mid * 2 + 1]!
    if (seq < from) hi = mid - 1
    else if (seq > to) lo = mid + 1
    else return mid * 2
  }
  return -1
}

function fillGap(gaps: number[], i: number, seq: number): void {
  const from = gaps[i]!
  const to = gaps[i + 1]!
  if (from === to) gaps.splice(i, 2)
  else if (seq === from) gaps[i] = from + 1
  else if (seq === to) gaps[i + 1] = to - 1
  else gaps.splice(i, 2, from, seq - 1, seq + 1, to)
}
