import t from 'tap'
import { BatchSizer } from '../../broker/persistence/batch-sizer.ts'

t.test('the first read asks for the first count; later ones aim at the byte target from the average size', async (t) => {
  const s = new BatchSizer(100_000, 50, 4, 1000)
  t.equal(s.next(), 50, 'sizes unknown: the first count')
  s.saw(50, 50 * 1000)
  t.equal(s.next(), 100, '1,000 B messages: 100 per 100,000 B')
  s.saw(100, 100 * 10_000)
  t.equal(s.next(), Math.floor(100_000 / (1_050_000 / 150)), 'the average of all messages seen so far')
})

t.test('large messages: never below the minimum; small ones: never above the maximum', async (t) => {
  const big = new BatchSizer(100_000, 50, 4, 1000)
  big.saw(1, 1_000_000)
  t.equal(big.next(), 4, 'a 1 MB message: the minimum, not 0')
  const small = new BatchSizer(100_000, 50, 4, 1000)
  small.saw(10, 100)
  t.equal(small.next(), 1000, '10 B messages: the maximum')
  const none = new BatchSizer(100_000, 50, 4, 1000)
  none.saw(0, 0)
  t.equal(none.next(), 50, 'a read that found nothing teaches nothing')
})
