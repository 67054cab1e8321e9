// Alert lifecycle per thing and alert name:
//
//   (none|cleared) --raise--> active --ack--> acknowledged
//   active|acknowledged --clear--> cleared
//
// Raising an alert that is already active or acknowledged is a no-op: an
// edge rule cannot fire twice without a clear, but a level rule fires on
// every evaluation and must not create a new occurrence each time.

import type { EngineErrorCode } from '../errors.ts'
import type { Severity } from '../model/index.ts'

export type AlertStatus = 'active' | 'acknowledged' | 'cleared'
export type AlertTransition = 'raised' | 'acknowledged' | 'cleared'

export interface AlertRecord {
  name: string
  status: AlertStatus
  severity: Severity
  message?: string
  /** Rule that raised the current occurrence, if any. */
  ruleId?: string
  raisedAt: number
  acknowledgedAt?: number
  acknowledgedBy?: string
  clearedAt?: number
  /** Number of times the alert went from not-active to active. */
  occurrences: number
}

export type AlertResult =
  | { ok: true, record: AlertRecord, transition: AlertTransition | null }
  | { ok: false, code: EngineErrorCode, message: string }

export interface RaiseOptions {
  severity: Severity
  message?: string
  ruleId?: string
}

export function raiseAlert (current: AlertRecord | undefined, name: string, opts: RaiseOptions, now: number): AlertResult {
  if (current !== undefined && current.status !== 'cleared') return { ok: true, record: current, transition: null }
  const record: AlertRecord = {
    name,
    status: 'active',
    severity: opts.severity,
    raisedAt: now,
    occurrences: (current?.occurrences ?? 0) + 1,
  }
  if (opts.message !== undefined) record.message = opts.message
  if (opts.ruleId !== undefined) record.ruleId = opts.ruleId
  return { ok: true, record, transition: 'raised' }
}

export function acknowledgeAlert (current: AlertRecord | undefined, name: string, by: string | undefined, now: number): AlertResult {
  if (current === undefined) return { ok: false, code: 'ENGINE_UNKNOWN_ALERT', message: `no alert "${name}"` }
  if (current.status === 'acknowledged') return { ok: true, record: current, transition: null }
  if (current.status === 'cleared') return { ok: false, code: 'ENGINE_ALERT_TRANSITION', message: `alert "${name}" is cleared; only active alerts can be acknowledged` }
  const record: AlertRecord = { ...current, status: 'acknowledged', acknowledgedAt: now }
  if (by !== undefined) record.acknowledgedBy = by
  return { ok: true, record, transition: 'acknowledged' }
}

/** Clearing an alert that is absent or already cleared is a no-op, not an error: reset rules clear unconditionally. */
export function clearAlert (current: AlertRecord | undefined, now: number): { record: AlertRecord | undefined, transition: AlertTransition | null } {
  if (current === undefined || current.status === 'cleared') return { record: current, transition: null }
  return { record: { ...current, status: 'cleared', clearedAt: now }, transition: 'cleared' }
}
