// Decides whether a new sample "counts" as a change: only counted changes are
// notified, appended to history and re-evaluate rules. The reference is the
// last counted sample, not the last written one, so a slow drift below the
// deadband still registers once it has drifted far enough in total.

import { jsonEqual } from '../json.ts'
import type { ChangePolicy } from '../model/index.ts'
import type { Sample } from './state.ts'

export function countsAsChange (policy: ChangePolicy | undefined, reference: Sample | undefined, next: Sample): boolean {
  const p = policy ?? 'on-change'
  if (p === 'never') return false
  if (p === 'always' || reference === undefined) return true
  // A quality change is always news: a reading going "bad" must reach rules
  // and history even if the value stayed the same.
  if (reference.quality !== next.quality) return true
  if (p === 'on-change') return !jsonEqual(reference.value, next.value)
  const a = reference.value
  const b = next.value
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(b - a) >= p.deadband
  return !jsonEqual(a, b)
}
