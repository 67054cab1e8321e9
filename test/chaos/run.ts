// CLI: npm run chaos [-- --only R1,S2 --duration 0.2 --out docs/reliability/report.md]
import { parseArgs } from 'node:util'
import { TESTS } from './registry.ts'
import { runTests, type TestRun } from './campaign.ts'
import { BIN, launchSettings } from './cluster.ts'
import { LOG_DIR } from './env.ts'
import { spawnSync } from 'node:child_process'
import { dirname } from 'node:path'
import { writeReport } from './report.ts'

const HELP = `Usage: npm run chaos -- [options]

Runs the reliability and abuse tests of RELIABILITY-PLAN.md against real
thingmesh node processes, Redis, and Sentinel on 127.0.0.1, and writes a
Markdown report (plus JSON next to it).

Options:
  --only <ids>             comma-separated test ids (default: all): ${TESTS.map((t) => t.id).join(',')}
  --duration <x>           multiply every fault-schedule duration (default 1);
                           --duration-scale is the same option
  --out <file.md>          report path (default docs/reliability/report.md)
  -h, --help               this text

Rates come from environment variables, e.g. CHAOS_R1_RATE=2000 (see each test).
Nodes are launched as docker/Dockerfile launches them, with
--max-old-space-size=1024 and MALLOC_MMAP_THRESHOLD_=131072; the environment
variables CHAOS_NODE_MAX_OLD_SPACE_MB and CHAOS_NODE_MMAP_THRESHOLD change
them, and an empty value leaves the flag or the variable out.
Exit code: 0 all criteria pass or not run, 1 some fail, 2 bad usage.
`

function main (): Promise<number> | number {
  let values
  try {
    ({ values } = parseArgs({ options: { only: { type: 'string' }, 'duration-scale': { type: 'string' }, duration: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }))
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${HELP}`)
    return 2
  }
  if (values.help) { process.stdout.write(HELP); return 0 }
  const scaleArg = values.duration ?? values['duration-scale']
  const scale = scaleArg === undefined ? 1 : Number(scaleArg)
  if (!(scale > 0 && scale <= 100)) { process.stderr.write('--duration must be a number in (0, 100]\n'); return 2 }
  const only = values.only ? values.only.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean) : null
  const unknown = only?.filter((id) => !TESTS.some((t) => t.id === id)) ?? []
  if (unknown.length) { process.stderr.write(`unknown test id(s): ${unknown.join(', ')}; known: ${TESTS.map((t) => t.id).join(', ')}\n`); return 2 }
  const tests = only ? TESTS.filter((t) => only.includes(t.id)) : TESTS
  const out = values.out ?? 'docs/reliability/report.md'
  return (async () => {
    const started = Date.now()
    const log = (msg: string): void => { process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${msg}\n`) }
    const runs: TestRun[] = []
    const rows = await runTests(tests, { scale, log }, runs)
    const meta = { date: new Date().toISOString().slice(0, 10), target: describeTarget(), runs, logDir: LOG_DIR, scale, durationSec: Math.round((Date.now() - started) / 1000), only }
    const files = writeReport(out, rows, meta, Object.fromEntries(TESTS.map((t) => [t.id, t.title])))
    for (const r of rows) process.stdout.write(`${r.result.padEnd(7)} ${r.test.padEnd(4)} ${r.criterion} — ${r.measured}\n`)
    process.stdout.write(`report: ${files.md} and ${files.json}\n`)
    return rows.some((r) => r.result === 'fail') ? 1 : 0
  })()
}

/** The binary under test and the git state of its checkout (commit, and whether it had local edits). */
function describeTarget (): string {
  const l = launchSettings()
  const launched = `, launched as the image does: ${l.nodeFlags.join(' ') || 'no heap flag'}, MALLOC_MMAP_THRESHOLD_=${l.mmapThreshold || '(unset)'}`
  const dir = dirname(dirname(BIN))
  const head = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' })
  if (head.status !== 0) return `${BIN} (${process.env.CHAOS_TARGET_NOTE ?? 'not a git checkout'})${launched}`
  const dirty = spawnSync('git', ['-C', dir, 'status', '--porcelain', '--', 'broker', 'engine', 'bin'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean).length
  return `${BIN} at commit ${head.stdout.trim()}${dirty ? ` with ${dirty} uncommitted broker/engine files` : ''}${launched}`
}

process.exitCode = await main()
