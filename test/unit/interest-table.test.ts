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

/** A peer whose interest set lives in "Redis" (`stored`); reads are answered when the test says so. */
function peer () {
  const stored = { seq: 0, filters: new Set<string>() }
  const replies: Array<() => void> = []
  let reads = 0
  const table = new InterestTable('self', {
    snapshot: (_b) => {
      reads++
      const snap = { seq: stored.seq, filters: [...stored.filters] }
      return new Promise((resolve) => replies.push(() => resolve(snap)))
    },
  }, (err) => { throw err })
  /** The peer changes its set in Redis; returns the announce it publishes. */
  const change = (op: 'add' | 'rm', f: string) => {
    stored.seq++
    if (op === 'add') stored.filters.add(f); else stored.filters.delete(f)
    return { v: 1 as const, t: 'interest' as const, b: 'b', seq: stored.seq, op, f: [f] }
  }
  const answer = async () => { replies.shift()!(); await new Promise((resolve) => setImmediate(resolve)) }
  return { table, change, answer, replies, reads: () => reads }
}

t.test('a change heard while the set is being read is applied on top of an older read', async (t) => {
  // Redis ran our read (seq 0, nothing), then the peer's announce (seq 1); the
  // control-channel message about seq 1 reaches us before the read's reply.
  const p = peer()
  p.table.setMembers(['self', 'b'])
  t.equal(p.replies.length, 1, 'the set is being read')
  const snapAt0 = p.replies.shift()!
  p.table.apply(p.change('add', 'out/#'))
  t.same(p.table.targets('out/x'), ['b'], 'meanwhile the peer gets every publish')
  snapAt0()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(p.reads(), 1, 'not read again')
  t.same(p.table.describe(), { b: { seq: 1, filters: 1, known: true } })
  t.same(p.table.targets('out/x'), ['b'], 'routed to the peer by its filter')
  t.same(p.table.targets('other/x'), [], 'and only by it')
})

t.test('a subscribe storm during a read costs one read, not a read per change', async (t) => {
  const p = peer()
  for (let i = 0; i < 100; i++) p.change('add', `old/${i}/#`)
  p.table.setMembers(['self', 'b'])
  // 5,000 changes announced while the read is out, one of them removing an old filter.
  for (let i = 0; i < 5000; i++) p.table.apply(p.change('add', `things/${i}/#`))
  p.table.apply(p.change('rm', 'old/7/#'))
  await p.answer()
  t.equal(p.reads(), 1, 'one read')
  t.same(p.table.describe(), { b: { seq: 5101, filters: 5099, known: true } })
  t.same(p.table.targets('things/4999/x'), ['b'])
  t.same(p.table.targets('old/7/x'), [], 'the removal held during the read was applied')
  t.same(p.table.targets('old/8/x'), ['b'])
})

t.test('a version gap: held until the missing change arrives, or a read fills it', async (t) => {
  const p = peer()
  p.table.setMembers(['self', 'b'])
  await p.answer()
  p.table.apply(p.change('add', 'a/#'))
  const missing = p.change('add', 'b/#')
  p.table.apply(p.change('add', 'c/#'))
  t.same(p.table.targets('z'), ['b'], 'unknown while version 2 is missing: gets every publish')
  t.equal(p.replies.length, 1, 'a read was started')
  p.table.apply(missing)
  t.same(p.table.describe(), { b: { seq: 3, filters: 3, known: true } }, 'the late change closed the gap')
  await p.answer()
  t.same(p.table.describe(), { b: { seq: 3, filters: 3, known: true } }, 'the read changes nothing')
  t.same(p.table.targets('z'), [])

  // A change lost on the control channel: the read brings it.
  p.change('rm', 'a/#')
  p.table.apply(p.change('add', 'd/#'))
  t.same(p.table.targets('a/1'), ['b'], 'unknown: still gets every publish')
  await p.answer()
  t.same(p.table.describe(), { b: { seq: 5, filters: 3, known: true } })
  t.same(p.table.targets('a/1'), [], 'the lost removal came with the read')
  t.same(p.table.targets('d/1'), ['b'])
})

t.test('a read that was out when our link was cut is done again', async (t) => {
  const p = peer()
  p.table.setMembers(['self', 'b'])
  await p.answer()
  p.table.apply(p.change('add', 'a/#'))
  p.table.resyncAll()
  t.equal(p.replies.length, 1)
  const stale = p.replies.shift()!
  p.table.resyncAll() // cut again while the read is out
  p.change('add', 'lost/#') // never heard: announced while we were cut off
  stale()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(p.replies.length, 1, 'read again')
  t.same(p.table.targets('x'), ['b'], 'unknown meanwhile')
  await p.answer()
  t.same(p.table.describe(), { b: { seq: 2, filters: 2, known: true } })
  t.same(p.table.targets('lost/1'), ['b'])
})

t.test('targets() answers from its cache until a filter or a node changes', async (t) => {
  const snapshots: Record<string, { seq: number, filters: string[] }> = { b: { seq: 1, filters: ['a/#'] }, c: { seq: 1, filters: [] } }
  const table = new InterestTable('self', { snapshot: async (b) => snapshots[b] }, (err) => { throw err })
  table.setMembers(['self', 'b'])
  await new Promise((resolve) => setImmediate(resolve))
  const seen = spyMatches(table)
  t.same(table.targets('a/1'), ['b'])
  t.same(table.targets('a/1'), ['b'])
  t.equal(seen.count, 1, 'one match for two publishes on a topic')
  table.apply({ v: 1, t: 'interest', b: 'b', seq: 2, op: 'rm', f: ['a/#'] })
  t.same(table.targets('a/1'), [], 'a removed filter is seen at once')
  table.apply({ v: 1, t: 'interest', b: 'b', seq: 3, op: 'add', f: ['a/+'] })
  t.same(table.targets('a/1'), ['b'], 'an added one too')
  table.setMembers(['self', 'b', 'c'])
  t.same(table.targets('x/1'), ['c'], 'a node not known yet gets every publish')
  t.same(table.targets('a/1').sort(), ['b', 'c'])
  await new Promise((resolve) => setImmediate(resolve))
  t.same(table.targets('x/1'), [], 'and only its filters once known')
  table.setMembers(['self', 'c'])
  t.same(table.targets('a/1'), [], 'a node gone takes its filters with it')
})
