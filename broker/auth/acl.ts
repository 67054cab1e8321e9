import type { Role } from './users.ts'

/**
 * Who a connection is, as the ACL sees it. `anonymous` exists only where
 * anonymous access is allowed (see policy.ts) and has the rights of an app.
 */
export interface Principal {
  username: string | null
  role: Role | 'anonymous'
  clientId: string
}

/**
 * Topics the thing engine writes. Under `things/{id}/` their first level is
 * reserved to the engine: no client publishes there, so a state or alert
 * message is always the engine's.
 */
export const ENGINE_OUTPUTS: ReadonlySet<string> = new Set(['state', 'changed', 'events', 'alerts', 'delta', 'errors'])
/** Written by apps (and the engine), read by the device. */
const APP_TO_DEVICE: ReadonlySet<string> = new Set(['desired'])

export const ADMIN_REQUEST_PREFIX = '$admin/'
export const ADMIN_REPLY_PREFIX = '$admin/reply/'

export function replyTopicOf (clientId: string): string {
  return ADMIN_REPLY_PREFIX + clientId
}

function engineOutput (levels: string[]): boolean {
  return levels[0] === 'things' && levels.length >= 3 && ENGINE_OUTPUTS.has(levels[2])
}

/** Is `levels` inside `things/{id}/…` (a whole level equal to the id, and something below it)? */
function ownThing (levels: string[], id: string | null): boolean {
  return id !== null && levels.length >= 3 && levels[0] === 'things' && levels[1] === id
}

/**
 * May this principal PUBLISH to `topic`? The topic is already valid MQTT
 * (no wildcards, no NUL: topics.ts). `$` topics are system namespaces: only an
 * admin's request topics `$admin/{operation}` are writable, and those are
 * answered by the node, never routed.
 */
export function mayPublish (p: Principal, topic: string): boolean {
  if (topic.startsWith('$')) {
    return p.role === 'admin' && topic.startsWith(ADMIN_REQUEST_PREFIX) && !topic.startsWith(ADMIN_REPLY_PREFIX) && topic.length > ADMIN_REQUEST_PREFIX.length
  }
  const levels = topic.split('/')
  if (engineOutput(levels)) return false
  if (p.role === 'device') return ownThing(levels, p.username) && !APP_TO_DEVICE.has(levels[2])
  return true
}

/**
 * May this principal SUBSCRIBE to `filter` (already valid MQTT)? Wildcards
 * cannot escape: [MQTT-4.7.2-1] keeps `#` and `+/…` off `$` topics, a device's
 * filter must name its own id as a literal level (so `things/+/…` and `#` are
 * refused), and every delivery is checked again with `mayReceive`.
 */
export function maySubscribeAcl (p: Principal, filter: string): boolean {
  if (filter.startsWith('$')) {
    if (filter === '$SYS' || filter.startsWith('$SYS/')) return p.role === 'admin'
    // A reply topic is private to the client that asked: exact match only.
    return p.role === 'admin' && filter === replyTopicOf(p.clientId)
  }
  if (p.role === 'device') return ownThing(filter.split('/'), p.username)
  return true
}

/** Checked per delivery, live and replayed from a queue: the last line of defence. */
export function mayReceive (p: Principal, topic: string): boolean {
  if (topic.startsWith('$')) {
    if (topic.startsWith('$SYS/')) return p.role === 'admin'
    return p.role === 'admin' && topic === replyTopicOf(p.clientId)
  }
  if (p.role === 'device') return ownThing(topic.split('/'), p.username)
  return true
}

/**
 * Client ids: none may start with `$` (system namespace), and a device may
 * only use its own id, or `{id}:{suffix}`, so one device cannot take over
 * another's session [S3].
 */
export function mayUseClientId (p: Principal, clientId: string): boolean {
  if (clientId.startsWith('$')) return false
  if (p.role === 'device') return clientId === p.username || clientId.startsWith(p.username + ':')
  return true
}
