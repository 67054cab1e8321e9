import t from 'tap'
import { SequenceChecker, summarizeStreams } from '../sequence.ts'

t.test('in-order stream has no loss', async (t) => {
  const c = new SequenceChecker()
  for (let i = 1; i <= 100; i++) t.equal(c.record('a', i), 'in-order')
  t.same(c.summary({ a: 100 }), { received: 100, unique: 100, duplicates: 0, outOfOrder: 0, lost: 0, foreign: 0 })
})

t.test('gaps count as lost, late arrivals fill them as out-of-order', async (t) => {
  const c = new SequenceChecker()
  for (const s of [1, 2, 5, 6, 10]) c.record('a', s)
  t.equal(c.snapshot().a!.missing, 5) // 3,4,7,8,9
  t.equal(c.record('a', 4), 'out-of-order')
  t.equal(c.record('a', 8), 'out-of-order') // splits 7..9
  t.equal(c.record('a', 7), 'out-of-order')
  t.equal(c.record('a', 9), 'out-of-order')
  t.same(c.summary({ a: 10 }), { received: 9, unique: 9, duplicates: 0, outOfOrder: 4, lost: 1, foreign: 0 })
})

t.test('duplicates are detected below and at the high-water mark', async (t) => {
  const c = new SequenceChecker()
  c.record('a', 1)
  c.record('a', 3)
  t.equal(c.record('a', 3), 'duplicate')
  t.equal(c.record('a', 1), 'duplicate')
  t.equal(c.record('a', 2), 'out-of-order')
  t.equal(c.record('a', 2), 'duplicate')
  const s = c.summary({ a: 3 })
  t.equal(s.duplicates, 3)
  t.equal(s.unique, 3)
  t.equal(s.lost, 0)
})

t.test('missing tail and silent publishers count as lost only with expectations', async (t) => {
  const c = new SequenceChecker()
  for (let i = 1; i <= 7; i++) c.record('a', i)
  t.equal(c.summary().lost, 0, 'without expected, a tail cannot be told from a stop')
  t.equal(c.summary({ a: 10 }).lost, 3)
  t.equal(c.summary({ a: 10, b: 5 }).lost, 8, 'publisher b never heard from')
})

t.test('streams not in expected are foreign, not loss', async (t) => {
  const c = new SequenceChecker()
  c.record('a', 1)
  c.record('other', 1)
  c.record('other', 2)
  const s = c.summary(new Map([['a', 1]]))
  t.equal(s.foreign, 2)
  t.equal(s.received, 1)
})

t.test('many gaps filled in random order leave exact counts', async (t) => {
  const c = new SequenceChecker()
  const order = Array.from({ length: 1000 }, (_, i) => i + 1)
  // Deterministic shuffle (LCG) so a failure reproduces.
  let x = 42
  for (let i = order.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2 ** 31
    const j = x % (i + 1)
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  const skipped = new Set(order.filter((s) => s % 97 === 0))
  for (const s of order) if (!skipped.has(s)) c.record('p', s)
  c.record('p', order[0]!) // one duplicate
  const s = summarizeStreams(c.snapshot(), { p: 1000 })
  t.equal(s.lost, skipped.size)
  t.equal(s.duplicates, 1)
  t.equal(s.unique, 1000 - skipped.size)
  t.ok(s.outOfOrder > 0)
})
