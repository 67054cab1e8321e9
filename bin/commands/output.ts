/** Readable output for the admin CLIs: tables for lists, key/value rows for objects. */
export function render (value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '(none)'
    if (value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))) return table(value as Array<Record<string, unknown>>)
    return value.map(cell).join('\n')
  }
  if (typeof value === 'object' && value !== null) {
    const rows = Object.entries(value as Record<string, unknown>)
    const w = Math.max(...rows.map(([k]) => k.length))
    return rows.map(([k, v]) => `${k.padEnd(w)}  ${Array.isArray(v) && v.every((x) => typeof x === 'object' && x !== null) && v.length > 0 ? '\n' + indent(table(v as Array<Record<string, unknown>>)) : cell(v, 100)}`).join('\n')
  }
  return cell(value, Infinity)
}

function table (rows: Array<Record<string, unknown>>): string {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))]
  const cells = rows.map((r) => cols.map((c) => cell(r[c])))
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)))
  const line = (parts: string[]): string => parts.map((p, i) => p.padEnd(widths[i])).join('  ').trimEnd()
  return [line(cols.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n')
}

function cell (v: unknown, max = 60): string {
  const s = v === undefined || v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v)
  return s.length > max ? s.slice(0, max - 1) + '…' : s
}

function indent (s: string): string {
  return s.split('\n').map((l) => '  ' + l).join('\n')
}

/** `--key value` pairs after the operation: values that parse as JSON are JSON (numbers, booleans, objects), others strings. */
export function argsFrom (positional: string | undefined, rest: string[]): Record<string, unknown> {
  let args: Record<string, unknown> = {}
  if (positional !== undefined) {
    try { args = JSON.parse(positional) } catch (err) { throw new UsageError(`arguments are not JSON: ${(err as Error).message}`) }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new UsageError('arguments must be a JSON object')
  }
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]
    if (!flag.startsWith('--') || i + 1 >= rest.length) throw new UsageError(`expected --key value, got '${flag}'`)
    const key = flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase())
    const raw = rest[++i]
    let v: unknown = raw
    try { v = JSON.parse(raw) } catch { /* a plain string */ }
    args[key] = v
  }
  return args
}

export class UsageError extends Error {}
