/**
 * Topic and filter rules of MQTT 3.1.1 section 4.7, plus thingmesh's reserved
 * namespaces. Pure functions: used by the authorizer and by persistence.
 */

/** [MQTT-4.7.1-2] '#' alone or last after '/'; [MQTT-4.7.1-3] '+' fills a whole level; [MQTT-4.7.3-2] no NUL. */
export function filterProblem (filter: string): string | null {
  if (filter.length === 0) return 'empty topic filter [MQTT-4.7.3-1]'
  if (filter.includes('\u0000')) return 'NUL character in topic filter [MQTT-4.7.3-2]'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return `'#' must be a whole last level [MQTT-4.7.1-2]`
    if (level.includes('+') && level !== '+') return `'+' must be a whole level [MQTT-4.7.1-3]`
  }
  return null
}

export function topicProblem (topic: string): string | null {
  if (topic.length === 0) return 'empty topic [MQTT-4.7.3-1]'
  if (topic.includes('\u0000')) return 'NUL character in topic [MQTT-4.7.3-2]'
  if (topic.includes('+') || topic.includes('#')) return 'wildcards are not allowed in a PUBLISH topic [MQTT-3.3.2-2]'
  return null
}

/** Namespaces ordinary clients may neither publish to nor subscribe to. */
export const RESERVED_PREFIXES = ['$SYS/', '$admin/'] as const

export function isReserved (topicOrFilter: string): boolean {
  return topicOrFilter === '$SYS' || topicOrFilter === '$admin' ||
    RESERVED_PREFIXES.some((p) => topicOrFilter.startsWith(p))
}

/** Does `topic` match `filter`? [MQTT-4.7.2-1]: first-level wildcards never match '$' topics. */
export function matches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  // Every other topic: without splitting both (per message to a `#` subscriber, e.g. its retained burst).
  if (filter === '#') return true
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}
