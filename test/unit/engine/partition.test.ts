import t, { type Test } from 'tap'
import { assignPartitions, diffAssignments, fnv1a32, partitionOf, partitionsOf, type Assignment } from '../../../engine/index.ts'

function counts (a: Assignment): Map<string, number> {
  const m = new Map<string, number>()
  for (const o of a) if (o !== null) m.set(o, (m.get(o) ?? 0) + 1)
  return m
}
function assertBalanced (t: Test, a: Assignment, nodes: string[], label: string): void {
  t.ok(a.every((o) => o !== null && nodes.includes(o)), `${label}: every partition owned by a live node`)
  const c = [...counts(a).values()]
  t.equal(c.length, nodes.length, `${label}: every node owns something`)
  t.ok(Math.max(...c) - Math.min(...c) <= 1, `${label}: balanced (${c.join(',')})`)
}

t.test('partitionOf is a stable FNV-1a hash', async (t) => {
  t.equal(fnv1a32(''), 0x811c9dc5, 'offset basis')
  t.equal(fnv1a32('a'), 0xe40c292c, 'FNV-1a test vector')
  t.equal(fnv1a32('foobar'), 0xbf9cf968, 'FNV-1a test vector')
  t.equal(partitionOf('pump-1', 64), fnv1a32('pump-1') % 64)
  t.equal(partitionOf('pump-1', 64), partitionOf('pump-1', 64))
  t.equal(partitionOf('ü', 7), fnv1a32('ü') % 7)
  t.not(fnv1a32('ü'), fnv1a32('\u00fc'.normalize('NFD')), 'hashes UTF-8 bytes, not normalised text')
  t.throws(() => partitionOf('x', 0), { code: 'ENGINE_INVALID_ARGUMENT' })
  t.throws(() => partitionOf('x', 1.5), { code: 'ENGINE_INVALID_ARGUMENT' })
  // Spread: 10k sequential ids over 16 partitions, none more than 20% off the mean.
  const c = new Array<number>(16).fill(0)
  for (let i = 0; i < 10_000; i++) c[partitionOf(`pump-${i}`, 16)]!++
  t.ok(Math.max(...c) < 625 * 1.2 && Math.min(...c) > 625 * 0.8, `spread ${c.join(',')}`)
})

t.test('fnv1a32: the ASCII fast path hashes the UTF-8 bytes like the general one', async (t) => {
  const reference = (text: string): number => {
    let h = 0x811c9dc5
    for (const b of new TextEncoder().encode(text)) h = Math.imul(h ^ b, 0x01000193)
    return h >>> 0
  }
  for (const id of ['s1', 'pump-17', 'A.b:c_d-9', '\u007f', 'é', 'pump-é', 'x\u00ffy', '温度', '\ud83d\ude00', 'a\ud800b']) {
    t.equal(fnv1a32(id), reference(id), JSON.stringify(id))
  }
})

t.test('initial assignment is balanced and deterministic', async (t) => {
  const a = assignPartitions(64, ['n3', 'n1', 'n2'])
  assertBalanced(t, a, ['n1', 'n2', 'n3'], 'initial')
  t.same(assignPartitions(64, ['n2', 'n3', 'n1', 'n1']), a, 'input order and duplicates do not matter')
  t.same(assignPartitions(4, []), [null, null, null, null])
  t.same(partitionsOf(assignPartitions(4, ['a', 'b']), 'a').length, 2)
})

t.test('a joining node takes only its share; nothing else moves', async (t) => {
  const before = assignPartitions(64, ['n1', 'n2', 'n3'])
  const after = assignPartitions(64, ['n1', 'n2', 'n3', 'n4'], before)
  assertBalanced(t, after, ['n1', 'n2', 'n3', 'n4'], 'after join')
  const moves = diffAssignments(before, after)
  t.equal(moves.length, 16, 'exactly the new node\'s share moves')
  t.ok(moves.every((m) => m.to === 'n4'), 'every move goes to the new node')
})

t.test('a leaving node\'s partitions are spread; nothing else moves', async (t) => {
  const before = assignPartitions(64, ['n1', 'n2', 'n3', 'n4'])
  const after = assignPartitions(64, ['n1', 'n2', 'n4'], before)
  assertBalanced(t, after, ['n1', 'n2', 'n4'], 'after leave')
  const moves = diffAssignments(before, after)
  t.equal(moves.length, 16)
  t.ok(moves.every((m) => m.from === 'n3'), 'only the dead node\'s partitions move')
})

t.test('minimal movement across many random membership changes', async (t) => {
  // Deterministic pseudo-random sequence (no Math.random in tests either).
  let seed = 42
  const rnd = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    return seed % n
  }
  const P = 97
  let nodes = ['a', 'b', 'c']
  let cur = assignPartitions(P, nodes)
  let spare = 0
  for (let step = 0; step < 60; step++) {
    const next = [...nodes]
    if (next.length > 1 && rnd(2) === 0) next.splice(rnd(next.length), 1)
    else next.push(`x${spare++}`)
    const after = assignPartitions(P, next, cur)
    assertBalanced(t, after, next, `step ${step}`)
    // Lower bound on moves for a balanced result: partitions of dead nodes,
    // plus what survivors hold above their new ceiling.
    const ceil = Math.ceil(P / next.length)
    const floor = Math.floor(P / next.length)
    const held = counts(cur)
    let required = cur.filter((o) => o === null || !next.includes(o)).length
    const over = next.map((n) => Math.max(0, (held.get(n) ?? 0) - ceil))
    required += over.reduce((x, y) => x + y, 0)
    // Extra ceil slots can absorb at most (P mod N) of the "floor < held <= ceil" surplus.
    let surplus = next.map((n) => Math.max(0, Math.min(held.get(n) ?? 0, ceil) - floor)).reduce((x, y) => x + y, 0)
    surplus = Math.max(0, surplus - (P % next.length))
    required += surplus
    t.equal(diffAssignments(cur, after).length, required, `step ${step}: moves are minimal`)
    t.same(assignPartitions(P, [...next].reverse(), cur), after, `step ${step}: deterministic`)
    cur = after
    nodes = next
  }
})

t.test('an already balanced assignment is kept as is', async (t) => {
  const cur: Array<string | null> = ['b', 'a', 'b', 'a', 'c', 'c', 'a']
  t.same(assignPartitions(7, ['a', 'b', 'c'], cur), cur)
  const partial: Array<string | null> = [null, 'a', null, 'a']
  t.same(diffAssignments(partial, assignPartitions(4, ['a', 'b'], partial)).map((m) => m.partition), [0, 2], 'only unowned partitions assigned')
})
