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

/** The levels a topic has (aedes' lib/utils.js topicLevelCount, what its max-topic-levels check counts), without splitting it. */
export function topicLevels (topic: string): number {
  let n = 1
  for (let i = topic.indexOf('/'); i >= 0; i = topic.indexOf('/', i + 1)) n++
  return n
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

/**
 * Does `topic` match `filter`? [MQTT-4.7.2-1]: first-level wildcards never
 * match '$' topics. Walks both strings level by level without splitting them:
 * it runs per delivery (hooks.authorizeForward), for every filter of the
 * subscriber, and two arrays of substrings per call were garbage for nothing
 * (issue 8).
 */
export function matches (filter: string, topic: string): boolean {
  const f0 = filter.charCodeAt(0)
  if (topic.charCodeAt(0) === DOLLAR && (f0 === PLUS || f0 === HASH)) return false
  if (filter === '#') return true
  const fl = filter.length
  const tl = topic.length
  // fi, ti: where the current level starts; ti > tl once the topic has no level left.
  let fi = 0
  let ti = 0
  for (;;) {
    let fe = filter.indexOf('/', fi)
    if (fe < 0) fe = fl
    const fLen = fe - fi
    // '#' matches the rest, the parent level included ('a/#' matches 'a') [MQTT-4.7.1-2].
    if (fLen === 1 && filter.charCodeAt(fi) === HASH) return true
    if (ti > tl) return false
    let te = topic.indexOf('/', ti)
    if (te < 0) te = tl
    if (fLen !== 1 || filter.charCodeAt(fi) !== PLUS) {
      if (te - ti !== fLen) return false
      for (let k = 0; k < fLen; k++) if (filter.charCodeAt(fi + k) !== topic.charCodeAt(ti + k)) return false
    }
    fi = fe + 1
    ti = te + 1
    if (fi > fl) return ti > tl
  }
}

const DOLLAR = 0x24
const PLUS = 0x2b
const HASH = 0x23
