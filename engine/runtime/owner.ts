// Partition ownership of one node: leases renewed on a beat, the target
// assignment computed from the live node set (every node computes the same,
// engine/partition/assign.ts), partitions taken when free and handed over
// only after this node stopped writing to them.

import { assignPartitions, partitionsOf } from '../index.ts'
import type { EngineStore } from './store.ts'

export interface BeatPlan {
  /** Partitions to start owning (lease granted, not yet loaded here). */
  acquired: Array<{ partition: number, token: number }>
  /** Partitions whose lease this node lost (or whose token changed): stop at once. */
  lost: number[]
  /** Partitions the assignment moved away: drain, then release. */
  handOver: number[]
  /** True if a partition this node should own is free now: beat again soon. */
  wantsMore: boolean
}

/** Pure: what a beat result means for this node. */
export function planBeat (
  self: string,
  partitions: number,
  result: { owners: ReadonlyArray<string | null>, held: ReadonlyMap<number, number>, live: readonly string[] },
  local: ReadonlyMap<number, { token: number }>,
): BeatPlan & { target: number[] } {
  const acquired: BeatPlan['acquired'] = []
  const lost: number[] = []
  for (const [p, part] of local) {
    if (result.held.get(p) !== part.token) lost.push(p)
  }
  for (const [p, token] of result.held) {
    if (!local.has(p) || local.get(p)?.token !== token) acquired.push({ partition: p, token })
  }
  const assignment = assignPartitions(partitions, result.live, result.owners)
  const target = partitionsOf(assignment, self)
  const targetSet = new Set(target)
  const handOver = [...result.held.keys()].filter((p) => !targetSet.has(p))
  const wantsMore = target.some((p) => result.owners[p] === null || result.owners[p] === undefined)
  return { acquired, lost, handOver, wantsMore, target }
}

export { type EngineStore }
