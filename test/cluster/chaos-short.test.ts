import t from 'tap'
import { loadavg } from 'node:os'
import { runTests, type TestRun } from '../chaos/campaign.ts'
import { TESTS } from '../chaos/registry.ts'
import type { Row } from '../chaos/report.ts'

// The CI-sized chaos campaign: R1, R6, S1, S2, S4 and R2 through the same
// harness as `npm run chaos`, with shorter fault schedules and CI rates. Each
// pass criterion of RELIABILITY-PLAN.md is one assertion; a criterion whose
// feature is absent is reported as not run (a comment), never as a pass.
// About 4 minutes at load average 15-20 (R6 and R2 wait out Redis failovers);
// the limit only guards against a hang.
t.setTimeout(480_000)

// R2 (Redis primary SIGKILL) joined CI once QoS1 forwards went through the
// replay log (broker/cluster/bus-log.ts): before it, 1 short run in 3 lost a
// few acknowledged messages for a clean subscriber; after it, 0 lost in 3 of
// 3 at load 7. `npm run test:resilience` still runs R2 alone.
const ids = (process.env.CHAOS_SHORT_ONLY ?? 'R1,R6,S1,S2,S4,R2').split(',')
const env = {
  // 200 msg/s, not the campaign's 2000: on the shared 2-core CI box (load
  // average 10-20) 1000 msg/s saturated the three nodes (p50 2 s, p99 22 s),
  // and a saturated cluster turns every QoS1 criterion (duplicates from
  // resent in-flight windows, first PUBACK after the kill, "lost" = not
  // arrived within the grace period) into a measure of the load. At 200 msg/s
  // the same run measured first PUBACK 173 ms and 0.16% duplicates at load 15.
  CHAOS_R1_RATE: '200',
  CHAOS_R1_PUBLISHERS: '4',
  CHAOS_R6_COUNT: '150',
  CHAOS_R6_FAILOVER_COUNT: '100',
  CHAOS_S1_ROUNDS: '2',
  CHAOS_S2_ATTACKERS: '50',
  CHAOS_S4_MESSAGES: '2000',
  CHAOS_R2_RATE: '200',
  ...process.env,
}

/**
 * Latency criteria that a loaded 2-core box cannot meet for reasons of load
 * alone (the full campaign's report shows them failing at load 11-21 with
 * nothing wrong but scheduling delay). Here each is checked against a bound
 * that still catches the defects these rows exist for, all of which cost
 * seconds: a takeover that waits for a release or a heartbeat (takeoverWaitMs
 * 2 s, deadAfterMs 3 s), delivery stalled across a failover, an attacker that
 * blocks the event loop. Every other part of the row (nothing lost, node
 * alive) is still required. The strict verdict and the figure are recorded
 * as a comment; `npm run chaos` keeps the strict criterion.
 */
const LOADED_BOX: Array<{ test: string, criterion: RegExp, check: (measured: string) => string | null }> = [
  {
    test: 'R1',
    criterion: /^survivors p99 latency < 250 ms/,
    check: (m) => bound(m, /p99 ([\d.]+) ms/, 2000, 'survivors p99'),
  },
  {
    // Legitimate duplicates are the publishes in flight on the killed node,
    // resent after the reconnect: their share is the PUBACK latency over the
    // run's length (10 s here), so it grows with load: 0.16% at load 15 with
    // p50 78 ms, 7-14% at load 23 with p50 4.7 s. A replay defect (a queue
    // sent again on reconnect) duplicates most of a subscriber's messages.
    test: 'R1',
    criterion: /^duplicates ≤ 0\.5%/,
    check: (m) => {
      const shares = [...m.matchAll(/\(([\d.]+)%\)/g)].map((x) => Number(x[1]))
      if (shares.length === 0) return `duplicate shares not found in "${m}"`
      return shares.every((x) => x <= 5) ? null : `a duplicate share over the loaded-box bound of 5%`
    },
  },
  {
    // 30 takeovers here, so p99 is the slowest one: at load 20 a few took
    // 500-600 ms (p50 68 ms), at load 22-29 p50 291 ms and max 903 ms. A
    // takeover that waits for something (a release, takeoverWaitMs 2 s) costs
    // ≥ 2 s: every one of them (the median) or some (the max).
    test: 'R6',
    criterion: /^old connection closed ≤ 500 ms/,
    check: (m) => bound(m, /p50 ([\d.]+) ms/, 1000, 'takeover p50') ?? bound(m, /max ([\d.]+) ms/, 2000, 'takeover max'),
  },
  {
    // Measured from the second CONNECT, which waits for the new primary; the
    // old node then learns of the takeover when its pub/sub link is back,
    // which at load 20 came up to 1.8 s after the failover. The defect this
    // row exists for, an old connection never closed, reads as "never" here,
    // and the strict "≤ 1 live session 5 s after" row still applies.
    test: 'R6',
    criterion: /^during failover ≤ failover \+ 1 s/,
    check: (m) => {
      const fo = /failover (\d+) ms/.exec(m)
      return fo ? bound(m, /max ([\d.]+) ms/, Number(fo[1]) + 3000, 'takeover max during failover') : `failover figure not found in "${m}"`
    },
  },
  {
    // The wire guard cuts each attacker at its first header; 50 at once at
    // load 25 took up to 2.6 s to be accepted, read and cut. The defect this
    // row exists for, reading a declared 268 MB body, leaves attackers open.
    test: 'S2',
    criterion: /closed before reading past the limit/,
    check: (m) => {
      const x = /single attacker: closed .*?(\d+) attackers: (\d+) closed, slowest (\d+) ms/.exec(m)
      if (!x) return `attacker figures not found, or an attacker not closed: "${m}"`
      if (x[1] !== x[2]) return `${Number(x[1]) - Number(x[2])} attackers not closed`
      return Number(x[3]) <= 10_000 ? null : `slowest close ${x[3]} ms over the loaded-box bound of 10000 ms`
    },
  },
  {
    test: 'S1',
    criterion: /^other clients p99 < 100 ms/,
    check: (m) => bound(m, /bystander p99 ([\d.]+) ms/, 1000, 'bystander p99') ?? allReceived(m),
  },
  {
    test: 'S2',
    criterion: /bystander unaffected/,
    check: (m) => (m.startsWith('alive;') ? null : 'node not alive') ?? bound(m, /bystander p99 ([\d.]+) ms/, 1000, 'bystander p99') ?? allReceived(m),
  },
]

/** null if the figure is within `max`; otherwise why not (an unreadable figure fails). */
function bound (measured: string, figure: RegExp, max: number, what: string): string | null {
  const m = figure.exec(measured)
  if (!m) return `${what}: figure not found in "${measured}"`
  return Number(m[1]) <= max ? null : `${what} ${m[1]} ms over the loaded-box bound of ${max} ms`
}

function allReceived (measured: string): string | null {
  const m = /(\d+)\/(\d+)/.exec(measured)
  if (!m) return `received/sent not found in "${measured}"`
  return m[1] === m[2] && Number(m[2]) > 0 ? null : `bystander received ${m[1]} of ${m[2]}`
}

function verdict (r: Row): { ok: boolean, note: string } {
  if (r.result === 'pass') return { ok: true, note: '' }
  const relaxed = LOADED_BOX.find((x) => x.test === r.test && x.criterion.test(r.criterion))
  if (!relaxed) return { ok: false, note: '' }
  const problem = relaxed.check(r.measured)
  return { ok: problem === null, note: problem ?? `strict criterion failed at load ${loadavg()[0].toFixed(1)}; within the loaded-box bound` }
}

for (const id of ids) {
  const test = TESTS.find((x) => x.id === id)
  if (!test) { t.fail(`unknown chaos test ${id}`); continue }
  t.test(`${test.id} ${test.title}`, async (t) => {
    const runs: TestRun[] = []
    const rows = await runTests([test], { scale: 0.2, env, log: (m) => t.comment(m) }, runs)
    t.ok(rows.length > 0, 'the test produced results')
    for (const r of rows) {
      if (r.result === 'not-run') { t.comment(`not run: ${r.criterion} (${r.measured})`); continue }
      if (r.result === 'info') { t.comment(`${r.criterion}: ${r.measured}`); continue }
      const v = verdict(r)
      if (v.note) t.comment(`${r.test} ${r.criterion}: ${v.note}`)
      t.ok(v.ok, `${r.criterion} — measured: ${r.measured}`)
    }
    t.comment(`load average ${runs[0]?.load1Start} → ${runs[0]?.load1End} over ${runs[0]?.seconds} s`)
  })
}
