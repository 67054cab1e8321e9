// What processing one input asks the runtime to do. Effects are data: the
// runtime performs them after it has durably recorded the new state, and a
// replay of the same input from the same state yields the same list.

import type { AlertRecord, AlertTransition } from '../alerts/index.ts'
import type { EngineErrorCode } from '../errors.ts'
import type { JsonValue } from '../json.ts'
import type { Quality } from '../model/index.ts'

export type Effect =
  /** Counted property changes, for subscribers of the thing's state. */
  | { type: 'stateChanged', thingId: string, seq: number, changes: Array<{ property: string, value: JsonValue, ts: number, quality: Quality }> }
  /** Append to the property's value stream (properties with `history`). */
  | { type: 'historyAppend', thingId: string, property: string, value: JsonValue, ts: number, quality: Quality }
  /**
   * A rule wants a property written. Routed by the runtime to the target
   * thing's partition as a `write` input with source "rule" and this depth,
   * also when the target is the same thing (never applied in place, so one
   * input is one bounded step).
   */
  | { type: 'setProperty', thingId: string, property: string, value: JsonValue, ruleId: string, sourceThingId: string, depth: number }
  | { type: 'publish', thingId: string, ruleId: string, topic: string, payload: JsonValue, qos: 0 | 1 | 2, retain: boolean }
  /** An alert changed; the state already holds the new record. */
  | { type: 'alert', thingId: string, transition: AlertTransition, alert: AlertRecord }
  | { type: 'event', thingId: string, ruleId?: string, event: string, payload: JsonValue, ts: number }
  /** The desired/reported delta changed: tell the device (empty state = in sync). */
  | { type: 'delta', thingId: string, version: number, state: Record<string, JsonValue> }
  /** A rule condition or action failed; the rule is skipped for this input, nothing else is affected. */
  | { type: 'ruleError', thingId: string, ruleId: string, code: EngineErrorCode, message: string }

export type EffectType = Effect['type']
