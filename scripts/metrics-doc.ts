/**
 * The README's metrics table, built from broker/metrics.ts so the docs cannot
 * drift from the code: `npm run docs:config` rewrites it with the
 * configuration table. test/unit/readme.test.ts checks the README lists every
 * metric. Node.js process metrics (prom-client defaults, `thingmesh_process_*`)
 * are summarised in one row.
 */
import { createMetrics } from '../broker/metrics.ts'

export async function metricsTable (): Promise<string> {
  const { registry } = createMetrics()
  const rows = ['| metric | type | labels | meaning |', '|---|---|---|---|']
  for (const m of await registry.getMetricsAsJSON()) {
    if (m.name.startsWith('thingmesh_process_')) continue
    const labels = [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))]
    const declared = (registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? labels
    rows.push(`| \`${m.name}\` | ${m.type} | ${declared.length ? declared.map((l) => `\`${l}\``).join(', ') : '—'} | ${m.help.replace(/\|/g, '\\|')} |`)
  }
  rows.push('| `thingmesh_process_*` | various | — | Node.js process metrics (CPU, resident memory, heap, event-loop lag, open fds, GC) from prom-client\'s defaults |')
  return rows.join('\n')
}

/** Replaces the README's table between the metrics markers. */
export async function withMetricsTable (readme: string): Promise<string> {
  const table = await metricsTable()
  return readme.replace(/<!-- metrics:start -->[\s\S]*?<!-- metrics:end -->/, `<!-- metrics:start -->\n${table}\n<!-- metrics:end -->`)
}
