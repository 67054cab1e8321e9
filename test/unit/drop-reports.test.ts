import t from 'tap'
import { DropReports } from '../../broker/persistence/drop-reports.ts'

function setup (): { d: DropReports, reports: Array<[string, number]>, advance: (ms: number) => void } {
  let now = 1_000_000
  const reports: Array<[string, number]> = []
  const d = new DropReports(10_000, (id, n) => { reports.push([id, n]) }, () => now)
  t.teardown(() => d.close())
  return { d, reports, advance: (ms) => { now += ms } }
}

t.test('the first drop is reported at once, the rest of the burst once its window ends', async (t) => {
  const { d, reports, advance } = setup()
  for (let i = 0; i < 60_000; i++) d.dropped('lazy', 1)
  t.same(reports, [['lazy', 1]], 'one report for 60,000 drops so far')
  advance(9_999)
  d.flush()
  t.same(reports, [['lazy', 1]], 'nothing before the window ends')
  advance(1)
  d.flush()
  t.same(reports, [['lazy', 1], ['lazy', 59_999]], 'every drop reported once, in total')
})

t.test('clients have their own windows; a quiet client is reported at once again and then forgotten', async (t) => {
  const { d, reports, advance } = setup()
  d.dropped('a', 2)
  d.dropped('b', 3)
  d.dropped('a', 1)
  t.same(reports, [['a', 2], ['b', 3]])
  advance(10_000)
  d.flush()
  t.same(reports, [['a', 2], ['b', 3], ['a', 1]])
  advance(10_000)
  d.flush()
  d.dropped('b', 4)
  t.same(reports.at(-1), ['b', 4], 'b, quiet for a window, is reported at once')
})

t.test('the flush timer does not keep the process alive and stops on close', async (t) => {
  const d = new DropReports(60_000, () => {})
  d.dropped('x', 1)
  d.dropped('x', 1)
  d.close()
  t.pass('closed with a pending report')
})
