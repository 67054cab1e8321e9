// Topic patterns and MQTT topic-filter matching. Pure.

export interface TopicVars {
  readonly clientId: string
  readonly n: number
  readonly thingId?: string
  readonly name?: string
}

const PLACEHOLDER = /\{(clientId|n|thingId|name)\}/g

export function expandTopic(pattern: string, vars: TopicVars): string {
  return pattern.replace(PLACEHOLDER, (_, key: string) => {
    const v = (vars as unknown as Record<string, string | number | undefined>)[key]
    return v === undefined ? `{${key}}` : String(v)
  })
}

/** The filter a subscriber uses to receive every topic a pattern can produce. */
export function patternToFilter(pattern: string): string {
  return pattern
    .split('/')
    .map((level) => (level.includes('{') ? '+' : level))
    .join('/')
}

/** MQTT 3.1.1 section 4.7 matching, including the '$' rule [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/** Problems with a topic pattern, for option validation. */
export function topicPatternProblems(pattern: string, label: string): string[] {
  const problems: string[] = []
  if (pattern.length === 0) problems.push(`${label} must not be empty`)
  if (/[+#]/.test(pattern)) problems.push(`${label} "${pattern}" must not contain wildcards`)
  const unknown = pattern.match(/\{[^}]*\}/g)?.filter((p) => !/^\{(clientId|n|thingId|name)\}$/.test(p)) ?? []
  if (unknown.length > 0) problems.push(`${label} "${pattern}" has unknown placeholder ${unknown.join(', ')}`)
  return problems
}

export function filterProblems(filter: string, label: string): string[] {
  const levels = filter.split('/')
  const bad = levels.some((l, i) => (l.includes('#') && (l !== '#' || i !== levels.length - 1)) || (l.includes('+') && l !== '+'))
  return filter.length === 0 || bad ? [`${label} "${filter}" is not a valid MQTT topic filter`] : []
}
