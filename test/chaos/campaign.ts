// Runs a list of chaos tests one after the other (each on its own topology),
// turning a thrown error into a failed row so one broken test never hides
// the others' figures.
import { loadavg } from 'node:os'
import type { ChaosContext, ChaosTest, Row } from './report.ts'

export interface TestRun { id: string, seconds: number, load1Start: number, load1End: number }

export interface CampaignOptions {
  scale: number
  log?: (msg: string) => void
  env?: NodeJS.ProcessEnv
}

export function makeContext (opts: CampaignOptions): ChaosContext {
  const env = opts.env ?? process.env
  return {
    scale: opts.scale,
    ms: (base, min = 0) => Math.max(min, Math.round(base * opts.scale)),
    num: (name, fallback) => {
      const v = env[name]
      if (v === undefined || v === '') return fallback
      const n = Number(v)
      if (!Number.isFinite(n)) throw new Error(`${name}=${v} is not a number`)
      return n
    },
    log: opts.log ?? (() => {}),
  }
}

export async function runTests (tests: ChaosTest[], opts: CampaignOptions, runs: TestRun[] = []): Promise<Row[]> {
  const ctx = makeContext(opts)
  const rows: Row[] = []
  for (const t of tests) {
    const started = Date.now()
    const load1Start = loadavg()[0]
    ctx.log(`${t.id} ${t.title}: start (load average ${load1Start.toFixed(1)})`)
    try {
      const got = await t.run(ctx)
      rows.push(...got)
      ctx.log(`${t.id}: ${got.filter((r) => r.result === 'pass').length} pass, ${got.filter((r) => r.result === 'fail').length} fail, ${got.filter((r) => r.result === 'not-run').length} not run (${Math.round((Date.now() - started) / 1000)} s)`)
    } catch (err) {
      const e = err as Error
      ctx.log(`${t.id}: harness error ${e.stack ?? e.message}`)
      rows.push({ test: t.id, criterion: 'test ran to completion', measured: `error: ${e.message.split('\n')[0].slice(0, 300)}`, result: 'fail', details: { stack: e.stack } })
    }
    runs.push({ id: t.id, seconds: Math.round((Date.now() - started) / 1000), load1Start: Math.round(load1Start * 10) / 10, load1End: Math.round(loadavg()[0] * 10) / 10 })
  }
  return rows
}
