import t from 'tap'
import { InterestTable } from '../../broker/cluster/interest.ts'

/** Counts the Qlobber matches the table runs. */
function spyMatches (table: InterestTable): { count: number } {
  const matcher = (table as unknown as { matcher: { match(topic: string): string[] } }).matcher
  const seen = { count: 0 }
  const match = matcher.match.bind(matcher)
  matcher.match = (topic: string) => { seen.count++; return match(topic) }
  return seen
}

t.test('no other live node: targets() is empty and matches nothing', async (t) => {
  const snapshots: Record<string, string[]> = { b: ['a/#'] }
  const table = new InterestTable('self', { snapshot: async (b) => ({ seq: 1, filters: snapshots[b] ?? [] }) }, (err) => { throw err })
  const seen = spyMatches(table)
  t.same(table.targets('a/1'), [])
  table.setMembers(['self'])
  t.same(table.targets('a/1'), [])
  t.equal(seen.count, 0, 'no Qlobber match while alone')

  table.setMembers(['self', 'b'])
  t.same(table.targets('x/1'), ['b'], 'a node not known yet gets every publish')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(table.describe(), { b: { seq: 1, filters: 1, known: true } })
  t.same(table.targets('a/1'), ['b'])
  t.same(table.targets('x/1'), [])
  t.ok(seen.count >= 3, 'matched while a peer is live')

  table.setMembers(['self'])
  const before = seen.count
  t.same(table.targets('a/1'), [])
  t.equal(seen.count, before, 'alone again: no match')
})

t.test('a change heard while the set is being read is not lost when the read is older', async (t) => {
  // Redis ran our read (seq 0, nothing), then the peer's announce (seq 1); the
  // control-channel message about seq 1 reaches us before the read's reply.
  let stored = { seq: 0, filters: [] as string[] }
  const replies: Array<() => void> = []
  const table = new InterestTable('self', {
    snapshot: (_b) => {
      const snap = { seq: stored.seq, filters: [...stored.filters] }
      return new Promise((resolve) => replies.push(() => resolve(snap)))
    },
  }, (err) => { throw err })
  table.setMembers(['self', 'b'])
  t.equal(replies.length, 1, 'the set is being read')
  stored = { seq: 1, filters: ['out/#'] }
  table.apply({ v: 1, t: 'interest', b: 'b', seq: 1, op: 'add', f: ['out/#'] })
  replies.shift()!()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(replies.length, 1, 'the read older than what was heard is done again')
  t.same(table.targets('out/x'), ['b'], 'meanwhile the peer gets every publish')
  replies.shift()!()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(table.describe(), { b: { seq: 1, filters: 1, known: true } })
  t.same(table.targets('out/x'), ['b'], 'routed to the peer by its filter')
  t.same(table.targets('other/x'), [], 'and only by it')
})
