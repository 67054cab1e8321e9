// Pure batch step of a partition owner: log entries in, new thing states and
// everything to write with them out. No I/O and no clock (time comes from the
// entries), so a new owner replaying the same entries from the same stored
// states derives the same states, outbox and effect ids.

import {
  initialState, partitionOf, processInput, reconcileState,
  type AlertRecord, type Definitions, type Effect, type JsonValue, type Quality, type ResolvedThing, type ThingState,
} from '../index.ts'
import type { EntryFields, LogEntry } from './entries.ts'
import { toInput } from './entries.ts'
import { topics } from './topics.ts'

export interface OutMessage {
  topic: string
  payload: string
  qos: 0 | 1 | 2
  retain: boolean
  /**
   * A retained `state` message is kept in the outbox as this reference only
   * (payload ''): the thing's full state is committed with it anyway, and is
   * rendered when the message is published (renderState).
   */
  stateRef?: { id: string, thingId: string }
}

export interface HistoryOp { thingId: string, property: string, ts: number, value: JsonValue, quality: Quality }

export interface AlertOp { thingId: string, alert: string, record: AlertRecord }

export interface FeedbackEntry { partition: number, entry: EntryFields }

/** A thing's state as the owner caches it, with the definitions version it was reconciled with. */
export interface CachedState { state: ThingState, defVersion: number }

export interface BatchResult {
  /** Things whose state changed, with the new state. */
  states: Map<string, ThingState>
  /** The cached (committed) state of each of those things before the batch. */
  before: Map<string, ThingState | undefined>
  history: HistoryOp[]
  alerts: AlertOp[]
  outbox: OutMessage[]
  /** setProperty effects, as entries for the target thing's partition log. */
  feedback: FeedbackEntry[]
  /** Things that got a tick entry in this batch (the scheduler may send another). */
  ticked: string[]
}

export interface BatchContext {
  /** The partition the entries come from: effect ids are "<partition>:<entry id>/<n>", unique cluster-wide. */
  partition: number
  defs: Definitions
  partitions: number
  /** The owner's state cache; updated in place (the caller drops it if the commit fails). */
  cache: Map<string, CachedState>
}

export function processBatch (ctx: BatchContext, entries: readonly LogEntry[]): BatchResult {
  const out: BatchResult = { states: new Map(), before: new Map(), history: [], alerts: [], outbox: [], feedback: [], ticked: [] }
  // The retained state is published once per thing per batch: subscribers
  // want the latest, and `changed/` carries every individual change.
  const lastEntry = new Map<string, string>()
  for (const entry of entries) {
    const e = { ...entry, id: `${ctx.partition}:${entry.id}` }
    if (e.k === 'tick') out.ticked.push(e.t)
    const def = ctx.defs.resolveThing(e.t)
    if (def === undefined) {
      if (e.k !== 'tick') out.outbox.push(errorMessage(e, `${e.id}/0`, { code: 'ENGINE_UNKNOWN_THING', message: `unknown thing "${e.t.slice(0, 128)}"` }))
      continue
    }
    const input = toInput(e)
    if ('error' in input) {
      out.outbox.push(errorMessage(e, `${e.id}/0`, input.error))
      continue
    }
    if (!out.before.has(def.id)) out.before.set(def.id, ctx.cache.get(def.id)?.state)
    const state = stateFor(ctx, def)
    const r = processInput(state, def, input.input, { now: e.n })
    ctx.cache.set(def.id, { state: r.state, defVersion: def.definitionsVersion })
    out.states.set(def.id, r.state)
    let k = 0
    for (const rej of r.rejections) out.outbox.push(errorMessage(e, `${e.id}/${k++}`, rej))
    for (const eff of r.effects) {
      const m = effectMessage(eff, `${e.id}/${k}`, out, ctx.partitions, e)
      if (m !== undefined) { out.outbox.push(m); k++ }
    }
    // Only inputs that changed what subscribers see republish the state
    // (a refused write still advances seq, but shows nothing new).
    if (r.effects.some((x) => x.type === 'stateChanged' || x.type === 'alert' || x.type === 'delta')) lastEntry.set(def.id, e.id)
  }
  for (const [thingId, entryId] of lastEntry) {
    const s = out.states.get(thingId)
    if (s !== undefined) out.outbox.push(stateMessage(s, `${entryId}/state`))
  }
  return out
}

function stateFor (ctx: BatchContext, def: ResolvedThing): ThingState {
  const cached = ctx.cache.get(def.id)
  if (cached === undefined) return initialState(def)
  if (cached.defVersion === def.definitionsVersion) return cached.state
  // Definitions changed since this state was last touched: drop what no longer
  // exists, add new defaults. Not a restart: values are kept.
  return reconcileState(cached.state, def)
}

function msg (topic: string, payload: unknown, retain = false): OutMessage {
  return { topic, payload: JSON.stringify(payload), qos: 1, retain }
}

function errorMessage (e: EntryFields & { id: string }, id: string, err: { code: string, message: string, property?: string }): OutMessage {
  const body: Record<string, unknown> = { id, thingId: e.t, code: err.code, message: err.message, entry: e.id }
  if (err.property !== undefined) body.property = err.property
  else if (e.p !== '' && e.k !== 'ack') body.property = e.p
  if (e.o !== '') body.client = e.o
  return msg(topics.errors(e.t), body)
}

/** The retained full state: what a dashboard or a late subscriber needs. */
export function stateView (s: ThingState): Record<string, unknown> {
  const properties: Record<string, unknown> = {}
  for (const [name, p] of Object.entries(s.properties)) properties[name] = p.current
  const desired: Record<string, JsonValue> = {}
  for (const [name, d] of Object.entries(s.shadow.desired)) desired[name] = d.value
  return { thingId: s.thingId, seq: s.seq, properties, desired, shadowVersion: s.shadow.version }
}

function stateMessage (s: ThingState, id: string): OutMessage {
  return { topic: topics.state(s.thingId), payload: '', qos: 1, retain: true, stateRef: { id, thingId: s.thingId } }
}

/**
 * The publishable form of an outbox message: a state reference gets the
 * payload of `state` (the committed state of its batch, or after a failover
 * the stored one, which is at least as new); undefined if the thing has no
 * state any more (nothing to show).
 */
export function renderState (m: OutMessage, stateOf: (thingId: string) => ThingState | undefined): OutMessage | undefined {
  if (m.stateRef === undefined) return m
  const s = stateOf(m.stateRef.thingId)
  if (s === undefined) return undefined
  return { topic: m.topic, payload: JSON.stringify({ id: m.stateRef.id, ...stateView(s) }), qos: m.qos, retain: m.retain }
}

function effectMessage (eff: Effect, id: string, out: BatchResult, partitions: number, e: EntryFields): OutMessage | undefined {
  switch (eff.type) {
    case 'stateChanged':
      // One message per entry carrying every counted change would hide which
      // property changed from topic filters; one per property is what
      // `changed/{name}` promises. They share the entry's id prefix.
      for (const c of eff.changes.slice(0, -1)) {
        out.outbox.push(msg(topics.changed(eff.thingId, c.property), { id: `${id}.${c.property}`, thingId: eff.thingId, seq: eff.seq, property: c.property, value: c.value, ts: c.ts, quality: c.quality }))
      }
      {
        const c = eff.changes[eff.changes.length - 1]
        if (c === undefined) return undefined
        return msg(topics.changed(eff.thingId, c.property), { id: `${id}.${c.property}`, thingId: eff.thingId, seq: eff.seq, property: c.property, value: c.value, ts: c.ts, quality: c.quality })
      }
    case 'historyAppend':
      out.history.push({ thingId: eff.thingId, property: eff.property, ts: eff.ts, value: eff.value, quality: eff.quality })
      return undefined
    case 'setProperty':
      out.feedback.push({
        partition: partitionOf(eff.thingId, partitions),
        entry: { t: eff.thingId, k: 'r', p: eff.property, v: JSON.stringify(eff.value), n: e.n, o: '', d: eff.depth },
      })
      return undefined
    case 'publish': {
      // Rule payloads are the rule author's; an object gets the effect id as
      // `effectId` so consumers can drop the rare re-publish after failover.
      const p = eff.payload
      const payload = p !== null && typeof p === 'object' && !Array.isArray(p) ? { ...p, effectId: id } : p
      return { topic: eff.topic, payload: typeof payload === 'string' ? payload : JSON.stringify(payload), qos: eff.qos, retain: eff.retain }
    }
    case 'alert':
      out.alerts.push({ thingId: eff.thingId, alert: eff.alert.name, record: eff.alert })
      return msg(topics.alert(eff.thingId, eff.alert.name), { id, thingId: eff.thingId, transition: eff.transition, ...eff.alert }, true)
    case 'event':
      return msg(topics.event(eff.thingId, eff.event), { id, thingId: eff.thingId, event: eff.event, ruleId: eff.ruleId, payload: eff.payload, ts: eff.ts })
    case 'delta':
      return msg(topics.delta(eff.thingId), { id, thingId: eff.thingId, version: eff.version, state: eff.state }, true)
    case 'ruleError':
      return msg(topics.errors(eff.thingId), { id, thingId: eff.thingId, code: eff.code, message: eff.message, ruleId: eff.ruleId })
  }
}
