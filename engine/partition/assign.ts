// Partition ownership. Every node computes the assignment from the same
// inputs (partition count, sorted live nodes, current assignment) and gets the
// same answer, so no coordinator is needed to agree on it; leases in the
// runtime only fence the hand-over.
//
// Target: each live node owns floor(P/N) or ceil(P/N) partitions. Movement is
// minimal for that target: a partition moves only if its owner is gone or
// holds more than its quota; the P mod N "ceil" quotas go to the nodes that
// already hold the most, so no partition moves just to make room.

import { EngineError } from '../errors.ts'
import { checkPartitionCount } from './hash.ts'

/** Index = partition number, value = owning node id or null (unowned). */
export type Assignment = ReadonlyArray<string | null>

export interface PartitionMove {
  partition: number
  from: string | null
  to: string | null
}

export function assignPartitions (partitionCount: number, liveNodeIds: readonly string[], current: Assignment = []): Array<string | null> {
  checkPartitionCount(partitionCount)
  const nodes = [...new Set(liveNodeIds)].sort()
  for (const n of nodes) {
    if (n.length === 0) throw new EngineError('ENGINE_INVALID_ARGUMENT', 'node ids must be non-empty')
  }
  if (nodes.length === 0) return new Array<string | null>(partitionCount).fill(null)

  const live = new Set(nodes)
  const held = new Map<string, number[]>(nodes.map((n) => [n, []]))
  for (let p = 0; p < partitionCount; p++) {
    const owner = current[p] ?? null
    if (owner !== null && live.has(owner)) (held.get(owner) as number[]).push(p)
  }

  const base = Math.floor(partitionCount / nodes.length)
  let extra = partitionCount % nodes.length
  // Extra slots to the biggest current holders; ties broken by node id so
  // every node picks the same ones.
  const byHolding = [...nodes].sort((a, b) => (held.get(b) as number[]).length - (held.get(a) as number[]).length || (a < b ? -1 : 1))
  const quota = new Map<string, number>()
  for (const n of byHolding) {
    quota.set(n, base + (extra > 0 ? 1 : 0))
    if (extra > 0) extra--
  }

  const result = new Array<string | null>(partitionCount).fill(null)
  const free: number[] = []
  for (const n of nodes) {
    const mine = held.get(n) as number[]
    const q = quota.get(n) as number
    mine.forEach((p, i) => {
      if (i < q) result[p] = n
      else free.push(p)
    })
  }
  for (let p = 0; p < partitionCount; p++) {
    const owner = current[p] ?? null
    if (owner === null || !live.has(owner)) free.push(p)
  }
  free.sort((a, b) => a - b)

  let i = 0
  for (const n of nodes) {
    let missing = (quota.get(n) as number) - (held.get(n) as number[]).filter((p) => result[p] === n).length
    while (missing > 0) {
      result[free[i] as number] = n
      i++
      missing--
    }
  }
  return result
}

/** Partitions whose owner differs between two assignments, in partition order. */
export function diffAssignments (before: Assignment, after: Assignment): PartitionMove[] {
  const moves: PartitionMove[] = []
  const n = Math.max(before.length, after.length)
  for (let p = 0; p < n; p++) {
    const from = before[p] ?? null
    const to = after[p] ?? null
    if (from !== to) moves.push({ partition: p, from, to })
  }
  return moves
}

/** Partitions owned by `nodeId`. */
export function partitionsOf (assignment: Assignment, nodeId: string): number[] {
  const out: number[] = []
  assignment.forEach((owner, p) => { if (owner === nodeId) out.push(p) })
  return out
}
