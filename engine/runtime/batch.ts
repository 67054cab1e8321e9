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
  /** Things whose state changed, with the new state (the cache's object: serialise it before the next batch). */
  states: Map<string, ThingState>
  /**
   * Per thing of `states`, the properties whose state the batch replaced
   * (null: all of them, a thing without cached state): a store may write
   * only those.
   */
  written: Map<string, Set<string> | null>
  /** Per thing, properties the definitions no longer have: their stored state goes. */
  removed: Map<string, string[]>
  /**
   * The payload of each `state` message of the outbox (by thing id), rendered
   * when the batch ended: the cached state goes on changing with the next
   * batches while this one is being published.
   */
  statePayloads: Map<string, string>
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
  const out: BatchResult = { states: new Map(), written: new Map(), removed: new Map(), statePayloads: new Map(), history: [], alerts: [], outbox: [], feedback: [], ticked: [] }
  // The retained state is published once per thing per batch: subscribers
  // want the latest, and `changed/` carries every individual change.
  const lastEntry = new Map<string, string>()
  for (const e of entries) {
    const eid = `${ctx.partition}:${e.id}`
    if (e.k === 'tick') out.ticked.push(e.t)
    const def = ctx.defs.resolveThing(e.t)
    if (def === undefined) {
      if (e.k !== 'tick') out.outbox.push(errorMessage(e, eid, `${eid}/0`, { code: 'ENGINE_UNKNOWN_THING', message: `unknown thing "${e.t.slice(0, 128)}"` }))
      continue
    }
    const input = toInput(e)
    if ('error' in input) {
      out.outbox.push(errorMessage(e, eid, `${eid}/0`, input.error))
      continue
    }
    const state = stateFor(ctx, def, out)
    // In place: the cache is the owner's, and is dropped if the commit fails.
    const r = processInput(state, def, input.input, { now: e.n, inPlace: true })
    out.states.set(def.id, state)
    const written = out.written.get(def.id)
    if (written !== null && r.written.length > 0) {
      if (written === undefined) out.written.set(def.id, new Set(r.written))
      else for (const name of r.written) written.add(name)
    }
    let k = 0
    for (const rej of r.rejections) out.outbox.push(errorMessage(e, eid, `${eid}/${k++}`, rej))
    // Only inputs that changed what subscribers see republish the state
    // (a refused write still advances seq, but shows nothing new).
    let shown = false
    for (const eff of r.effects) {
      if (eff.type === 'stateChanged' || eff.type === 'alert' || eff.type === 'delta') shown = true
      const m = effectMessage(eff, `${eid}/${k}`, out, ctx.partitions, e)
      if (m !== undefined) { out.outbox.push(m); k++ }
    }
    if (shown) lastEntry.set(def.id, eid)
  }
  for (const [thingId, entryId] of lastEntry) {
    const s = out.states.get(thingId)
    if (s === undefined) continue
    const id = `${entryId}/state`
    out.outbox.push(stateMessage(s, id))
    out.statePayloads.set(thingId, statePayload(id, s))
  }
  return out
}

/** The thing's cached state, made (or reconciled) and cached first if need be; what that changed is noted in `out`. */
function stateFor (ctx: BatchContext, def: ResolvedThing, out: BatchResult): ThingState {
  const cached = ctx.cache.get(def.id)
  if (cached === undefined) {
    const state = initialState(def)
    ctx.cache.set(def.id, { state, defVersion: def.definitionsVersion })
    out.written.set(def.id, null)
    return state
  }
  if (cached.defVersion === def.definitionsVersion) return cached.state
  // Definitions changed since this state was last touched: drop what no longer
  // exists, add new defaults. Not a restart: values are kept.
  const old = cached.state
  const state = reconcileState(old, def)
  cached.state = state
  cached.defVersion = def.definitionsVersion
  if (out.written.get(def.id) !== null) {
    const written = out.written.get(def.id) ?? new Set<string>()
    for (const name in state.properties) if (old.properties[name] !== state.properties[name]) written.add(name)
    out.written.set(def.id, written)
  }
  const removed = out.removed.get(def.id) ?? []
  for (const name in old.properties) if (!Object.hasOwn(state.properties, name)) removed.push(name)
  if (removed.length > 0) out.removed.set(def.id, removed)
  return state
}

function msg (topic: string, payload: unknown, retain = false): OutMessage {
  return { topic, payload: JSON.stringify(payload), qos: 1, retain }
}

function errorMessage (e: EntryFields, entryId: string, id: string, err: { code: string, message: string, property?: string }): OutMessage {
  const body: Record<string, unknown> = { id, thingId: e.t, code: err.code, message: err.message, entry: entryId }
  if (err.property !== undefined) body.property = err.property
  else if (e.p !== '' && e.k !== 'ack') body.property = e.p
  if (e.o !== '') body.client = e.o
  return msg(topics.errors(e.t), body)
}

/** The retained full state: what a dashboard or a late subscriber needs. */
export function stateView (s: ThingState): Record<string, unknown> {
  return { thingId: s.thingId, seq: s.seq, properties: currentValues(s), desired: desiredValues(s), shadowVersion: s.shadow.version }
}

function currentValues (s: ThingState): Record<string, unknown> {
  const properties: Record<string, unknown> = {}
  for (const name in s.properties) properties[name] = (s.properties[name] as ThingState['properties'][string]).current
  return properties
}

function desiredValues (s: ThingState): Record<string, JsonValue> {
  const desired: Record<string, JsonValue> = {}
  for (const name in s.shadow.desired) desired[name] = (s.shadow.desired[name] as ThingState['shadow']['desired'][string]).value
  return desired
}

/** The `state` message's payload: stateView with the message id first, built once. */
function statePayload (id: string, s: ThingState): string {
  return JSON.stringify({ id, thingId: s.thingId, seq: s.seq, properties: currentValues(s), desired: desiredValues(s), shadowVersion: s.shadow.version })
}

function stateMessage (s: ThingState, id: string): OutMessage {
  return { topic: topics.state(s.thingId), payload: '', qos: 1, retain: true, stateRef: { id, thingId: s.thingId } }
}

/**
 * The publishable form of an outbox message: a state reference gets the
 * payload of `state` (the one rendered when its batch ended, or after a
 * failover the stored state's, which is at least as new); undefined if the
 * thing has no state any more (nothing to show).
 */
export function renderState (m: OutMessage, stateOf: (thingId: string) => ThingState | undefined, rendered?: ReadonlyMap<string, string>): OutMessage | undefined {
  if (m.stateRef === undefined) return m
  const payload = rendered?.get(m.stateRef.thingId)
  if (payload !== undefined) return { topic: m.topic, payload, qos: m.qos, retain: m.retain }
  const s = stateOf(m.stateRef.thingId)
  if (s === undefined) return undefined
  return { topic: m.topic, payload: statePayload(m.stateRef.id, s), qos: m.qos, retain: m.retain }
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
