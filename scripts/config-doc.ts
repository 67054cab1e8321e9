/**
 * Prints the README's configuration table from broker/config.ts, so the docs
 * cannot drift from the code: `node --import tsx scripts/config-doc.ts`.
 * test/unit/readme.test.ts checks the README lists every option.
 */
import { envOf, flagOf, optionSpecs } from '../broker/config.ts'

export function configTable (): string {
  const rows = ['| flag | environment | default | meaning |', '|---|---|---|---|']
  for (const [key, spec] of Object.entries(optionSpecs)) {
    const def = spec.default === undefined ? '—' : `\`${String(spec.default)}\``
    rows.push(`| \`${flagOf(key)}\` | \`${envOf(key)}\` | ${def} | ${spec.doc.replace(/\|/g, '\\|')} |`)
  }
  return rows.join('\n')
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(configTable())
