import t from 'tap'
import { readFileSync } from 'node:fs'
import { withConfigTable } from '../../scripts/config-doc.ts'
import { withMetricsTable } from '../../scripts/metrics-doc.ts'

// The README's configuration table is generated from broker/config.ts; this
// keeps the two in step (run `npm run docs:config` after adding an option).
t.test('README configuration table matches broker/config.ts', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  t.ok(readme.includes('<!-- config:start -->'), 'README has the config markers')
  t.equal(readme, withConfigTable(readme), 'README table is current: run `npm run docs:config`')
})

t.test('README metrics table matches broker/metrics.ts', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  t.ok(readme.includes('<!-- metrics:start -->'), 'README has the metrics markers')
  t.equal(readme, await withMetricsTable(readme), 'README metrics table is current: run `npm run docs:config`')
})
