import t from 'tap'
import { LatencyHistogram } from '../stats.ts'

t.test('percentile summary of a known distribution', async (t) => {
  const h = new LatencyHistogram()
  for (let ms = 1; ms <= 1000; ms++) h.recordUs(ms * 1000)
  const s = h.summary()
  t.equal(s.count, 1000)
  t.ok(Math.abs(s.p50Ms - 500) <= 1, `p50 ${s.p50Ms}`)
  t.ok(Math.abs(s.p90Ms - 900) <= 1, `p90 ${s.p90Ms}`)
  t.ok(Math.abs(s.p99Ms - 990) <= 1, `p99 ${s.p99Ms}`)
  t.ok(Math.abs(s.p999Ms - 999) <= 1, `p99.9 ${s.p999Ms}`)
  t.ok(Math.abs(s.maxMs - 1000) <= 1, `max ${s.maxMs}`)
  t.ok(Math.abs(s.minMs - 1) <= 0.01, `min ${s.minMs}`)
  t.ok(Math.abs(s.meanMs - 500.5) <= 1, `mean ${s.meanMs}`)
})

t.test('empty histogram summarises to zeros; merge via encoding', async (t) => {
  const a = new LatencyHistogram()
  t.equal(a.summary().count, 0)
  t.equal(a.summary().p99Ms, 0)
  const b = new LatencyHistogram()
  b.recordUs(2000)
  b.recordUs(-5) // clock skew clamps, not dropped
  a.add(LatencyHistogram.decode(b.encode()))
  t.equal(a.count, 2)
  t.ok(Math.abs(a.summary().maxMs - 2) < 0.01)
})
