// Every MQTT topic the thing engine reads or writes, built and parsed here and
// nowhere else. Thing ids and property names cannot contain `/`, `+`, `#` or
// `$` (engine/model/schema.ts), so a topic level is always one id or name.

export const THINGS_PREFIX = 'things/'

/** What a client publish to a `things/...` topic asks of the engine. */
export type InboundWrite =
  /** Device report of one property (`properties/{name}`) or several (`properties`). */
  | { kind: 'report', thingId: string, property?: string }
  /** Application sets one desired value (`desired/{name}`) or several (`desired`). */
  | { kind: 'desired', thingId: string, property?: string }

export const topics = {
  /** Device -> engine: one property (value or {value, ts, quality}). */
  property: (thingId: string, name: string) => `things/${thingId}/properties/${name}`,
  /** Device -> engine: a JSON object of several properties. */
  properties: (thingId: string) => `things/${thingId}/properties`,
  /** Application -> engine: a desired value for the device. */
  desired: (thingId: string, name: string) => `things/${thingId}/desired/${name}`,
  /** Engine -> all, retained: the full current state with timestamps and quality. */
  state: (thingId: string) => `things/${thingId}/state`,
  /** Engine -> all: one counted change of one property. */
  changed: (thingId: string, name: string) => `things/${thingId}/changed/${name}`,
  /** Engine -> all: an event a rule emitted. */
  event: (thingId: string, name: string) => `things/${thingId}/events/${name}`,
  /** Engine -> all, retained: the alert's current record. */
  alert: (thingId: string, name: string) => `things/${thingId}/alerts/${name}`,
  /** Engine -> device, retained: desired values the device does not report yet (shadow delta). */
  delta: (thingId: string) => `things/${thingId}/delta`,
  /** Engine -> writer: why a write (or a rule) was refused. */
  errors: (thingId: string) => `things/${thingId}/errors`,
} as const

/** The subscription filters of the engine's inbound topics, for documentation and tests. */
export const INBOUND_FILTERS = ['things/+/properties', 'things/+/properties/+', 'things/+/desired', 'things/+/desired/+'] as const

/** Parses an inbound topic; undefined for anything the engine does not consume. */
export function parseInbound (topic: string): InboundWrite | undefined {
  if (!topic.startsWith(THINGS_PREFIX)) return undefined
  const parts = topic.split('/')
  if (parts.length < 3 || parts.length > 4) return undefined
  const thingId = parts[1] as string
  const section = parts[2]
  const property = parts[3]
  if (thingId === '' || property === '') return undefined
  if (section === 'properties') return property === undefined ? { kind: 'report', thingId } : { kind: 'report', thingId, property }
  if (section === 'desired') return property === undefined ? { kind: 'desired', thingId } : { kind: 'desired', thingId, property }
  return undefined
}
