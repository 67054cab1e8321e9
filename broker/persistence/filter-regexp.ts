/**
 * MQTT topic filters compiled into one anchored RegExp, for testing many
 * topics against them: a filter starting with a wildcard must be tested
 * against every retained topic (a million in bench:scale), and V8 runs a
 * RegExp as native code without splitting each topic into levels (Qlobber
 * did, at about half a microsecond per topic).
 *
 * `+` is one whole level, possibly empty; `#` is the rest, including the
 * parent level ("a/#" matches "a") [MQTT-4.7.1-2]. Filters are valid (the
 * SUBSCRIBE was authorized). The `$` rule [MQTT-4.7.2-1] is the caller's.
 */
export function filterRegExp (filters: string[]): RegExp {
  // s: `.` also matches line breaks, which a topic may contain.
  return new RegExp(`^(?:${filters.map(filterSource).join('|')})$`, 's')
}

function filterSource (filter: string): string {
  const levels = filter.split('/')
  let out = ''
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level === '#') return i === 0 ? '.*' : `${out}(?:/.*)?`
    if (i > 0) out += '/'
    out += level === '+' ? '[^/]*' : level.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
  }
  return out
}
