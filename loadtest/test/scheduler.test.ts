import t from 'tap'
import { RateScheduler, splitEven } from '../scheduler.ts'

t.test('grants tokens at the configured rate', async (t) => {
  const s = new RateScheduler(100, 0)
  t.equal(s.take(0), 0)
  t.equal(s.take(10), 1)
  t.equal(s.take(500), 49)
  t.equal(s.waitMs(500), 10)
  let total = 0
  for (let ms = 501; ms <= 1500; ms++) total += s.take(ms)
  t.equal(total, 100)
})

t.test('caps the backlog and counts what it skipped', async (t) => {
  const s = new RateScheduler(100, 0)
  t.equal(s.take(10_000), 100, 'no more than one second of burst')
  t.equal(s.behind, 900)
})

t.test('respects want and keeps the remainder', async (t) => {
  const s = new RateScheduler(1000, 0)
  t.equal(s.take(100, 30), 30)
  t.equal(s.take(100), 70)
})

t.test('unpaced grants what is asked', async (t) => {
  const s = new RateScheduler(null, 0)
  t.equal(s.take(0, 1234), 1234)
  t.equal(s.waitMs(0), 0)
  t.throws(() => new RateScheduler(0, 0))
})

t.test('splitEven', async (t) => {
  t.same(splitEven(10, 3), [4, 3, 3])
  t.same(splitEven(2, 4), [1, 1, 0, 0])
})
