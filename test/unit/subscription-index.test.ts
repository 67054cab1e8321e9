import t from 'tap'
import { SubscriptionIndex } from '../../broker/persistence/subscription-index.ts'

const add = (ver: number, c: string, ...subs: Array<[string, number]>) => ({ ver, c, op: 'add' as const, ch: subs.map(([f, qos]) => [f, JSON.stringify({ qos })] as [string, string]) })

t.test('changes apply in version order; a gap marks the index stale until a snapshot', async (t) => {
  const idx = new SubscriptionIndex()
  t.ok(idx.stale, 'stale until first load')
  idx.load(0, [])
  t.ok(idx.apply(add(1, 'c1', ['a/#', 1])))
  t.same(idx.match('a/b').map((s) => s.clientId), ['c1'])
  t.ok(idx.apply(add(1, 'c1', ['a/#', 1])), 'a repeat is ignored')
  t.notOk(idx.apply(add(3, 'c2', ['b', 1])), 'version 3 after 1 is a gap')
  t.ok(idx.stale)
  // The snapshot at version 2 plus the buffered version 3 rebuild everything.
  t.ok(idx.load(2, [['c1', [['a/#', JSON.stringify({ qos: 1 })]]], ['c9', [['z', JSON.stringify({ qos: 2 })]]]]))
  t.notOk(idx.stale)
  t.equal(idx.version, 3)
  t.same(idx.match('b').map((s) => s.clientId), ['c2'])
  t.same(idx.match('z').map((s) => [s.clientId, s.qos]), [['c9', 2]])
})

t.test('QoS0 subscriptions are not indexed (nothing is queued for them); rm and clean remove', async (t) => {
  const idx = new SubscriptionIndex()
  idx.load(0, [])
  idx.apply(add(1, 'c1', ['x', 0], ['y', 1], ['y/+', 2]))
  t.same(idx.match('x'), [])
  t.equal(idx.subscriptionCount, 2)
  idx.apply({ ver: 2, c: 'c1', op: 'rm', ch: ['y'] })
  t.same(idx.match('y'), [])
  t.equal(idx.match('y/1').length, 1)
  idx.apply({ ver: 3, c: 'c1', op: 'clean', ch: [] })
  t.equal(idx.match('y/1').length, 0)
  t.equal(idx.clientCount, 0)
})

t.test('waitFor resolves once the version is applied', async (t) => {
  const idx = new SubscriptionIndex()
  idx.load(5, [])
  let done = false
  const p = idx.waitFor(6).then(() => { done = true })
  await Promise.resolve()
  t.notOk(done)
  idx.apply(add(6, 'c', ['t', 1]))
  await p
  t.ok(done)
})
