/**
 * Prints the README's configuration table from broker/config.ts (and the
 * metrics table, scripts/metrics-doc.ts), so the docs cannot drift from the
 * code: `npm run docs:config`.
 * test/unit/readme.test.ts checks the README lists every option.
 */
import { envOf, flagOf, optionSpecs } from '../broker/config.ts'
import { withMetricsTable } from './metrics-doc.ts'

export function configTable (): string {
  const rows = ['| flag | environment | default | meaning |', '|---|---|---|---|']
  for (const [key, spec] of Object.entries(optionSpecs)) {
    const def = spec.default === undefined ? '—' : `\`${String(spec.default)}\``
    rows.push(`| \`${flagOf(key)}\` | \`${envOf(key)}\` | ${def} | ${spec.doc.replace(/\|/g, '\\|')} |`)
  }
  return rows.join('\n')
}


/** Replaces the README's table between the config markers. */
export function withConfigTable (readme: string): string {
  return readme.replace(/<!-- config:start -->[\s\S]*?<!-- config:end -->/, `<!-- config:start -->\n${configTable()}\n<!-- config:end -->`)
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { readFileSync, writeFileSync } = await import('node:fs')
  const path = new URL('../README.md', import.meta.url)
  writeFileSync(path, await withMetricsTable(withConfigTable(readFileSync(path, 'utf8'))))
  console.log('README.md configuration and metrics tables updated')
}
