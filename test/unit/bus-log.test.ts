import t from 'tap'
import { BusCatchUp, parseLogId, splitLogged, type LogReader } from '../../broker/cluster/bus-log.ts'

const batch = (s: string): Buffer => Buffer.concat([Buffer.from([0xb2]), Buffer.from(s)])
const logged = (id: string, s: string): Buffer => Buffer.concat([Buffer.from(id + '\n'), batch(s)])
const text = (b: Buffer): string => b.subarray(1).toString()

/** A log the test fills by hand; range() answers like XRANGE (exclusive start). */
function fakeLog (): LogReader & { entries: Array<[string, Buffer]>, failures: number, calls: number } {
  const cmp = (a: string, b: string): number => {
    const x = parseLogId(a)!; const y = parseLogId(b)!
    return x.ms - y.ms || x.seq - y.seq
  }
  const log = {
    entries: [] as Array<[string, Buffer]>,
    failures: 0,
    calls: 0,
    async range (afterId: string, count: number) {
      log.calls++
      if (log.failures > 0) { log.failures--; throw new Error('Connection is closed.') }
      return log.entries.filter(([id]) => cmp(id, afterId) > 0).slice(0, count)
    },
  }
  return log
}

t.test('splitLogged tells logged from plain batches and rejects a bad id', async (t) => {
  t.same(splitLogged(batch('x')), { id: null, batch: batch('x') })
  const s = splitLogged(logged('1700000000000-3', 'y'))!
  t.same(s.id, { ms: 1700000000000, seq: 3 })
  t.equal(text(s.batch), 'y')
  t.equal(splitLogged(Buffer.from('12x\n\xb2')), undefined, 'an id without a dash')
  t.equal(splitLogged(Buffer.from('1234567890')), undefined, 'no newline')
})

t.test('live delivery in order; a logged batch seen twice is delivered once', async (t) => {
  const got: string[] = []
  const c = new BusCatchUp(fakeLog(), (b) => got.push(text(b)))
  c.live(logged('5-0', 'a'))
  c.live(batch('q0'))
  c.live(logged('5-1', 'b'))
  c.live(logged('5-1', 'b'))
  c.live(logged('4-9', 'old'))
  t.same(got, ['a', 'q0', 'b'])
  t.equal(c.stats.duplicates, 2)
  t.equal(c.lastDelivered, '5-1')
})

t.test('after a cut: what the log holds beyond the last delivered id, then what came live meanwhile, each once', async (t) => {
  const log = fakeLog()
  const got: string[] = []
  const c = new BusCatchUp(log, (b) => got.push(text(b)))
  c.live(logged('1-0', 'm1'))
  // The link was down while 1-1..1-3 were written; 1-3 also arrives live after the resubscribe.
  log.entries.push(['1-0', batch('m1')], ['1-1', batch('m2')], ['1-2', batch('m3')], ['1-3', batch('m4')])
  const resumed = c.resume()
  c.live(logged('1-3', 'm4'))
  c.live(batch('plain'))
  c.live(logged('1-4', 'm5'))
  t.same(got, ['m1'], 'nothing newer is delivered before the log is read')
  await resumed
  t.same(got, ['m1', 'm2', 'm3', 'm4', 'plain', 'm5'])
  t.equal(c.stats.replayed, 3)
  t.equal(c.stats.duplicates, 1)
})

t.test('after the link is lost, live batches wait for the log even before resume() is called', async (t) => {
  const log = fakeLog()
  const got: string[] = []
  const c = new BusCatchUp(log, (b) => got.push(text(b)))
  c.live(logged('6-1', 'a'))
  c.linkLost()
  log.entries.push(['6-2', batch('gap')])
  c.live(logged('6-3', 'after-resubscribe'))
  t.same(got, ['a'], 'held: delivering it would skip the gap')
  await c.resume()
  t.same(got, ['a', 'gap', 'after-resubscribe'])
  c.live(logged('6-4', 'b'))
  t.same(got.at(-1), 'b', 'live again')
})

t.test('a long gap is read page by page', async (t) => {
  const log = fakeLog()
  const got: string[] = []
  const c = new BusCatchUp(log, (b) => got.push(text(b)))
  for (let i = 1; i <= 1234; i++) log.entries.push([`2-${i}`, batch(String(i))])
  await c.resume()
  t.equal(got.length, 1234)
  t.equal(got[1233], '1234')
  t.equal(log.calls, 3)
})

t.test('a failed read is retried; nothing live is delivered before the log', async (t) => {
  const log = fakeLog()
  log.failures = 2
  log.entries.push(['3-1', batch('missed')])
  const errors: string[] = []
  const got: string[] = []
  const c = new BusCatchUp(log, (b) => got.push(text(b)), (e) => errors.push(e.message), 5)
  const resumed = c.resume()
  c.live(logged('3-2', 'live'))
  await resumed
  t.same(got, ['missed', 'live'])
  t.equal(errors.length, 2)
})

t.test('a reconnect during a catch-up reads the log again before the live backlog', async (t) => {
  const log = fakeLog()
  const got: string[] = []
  const c = new BusCatchUp(log, (b) => got.push(text(b)))
  log.entries.push(['4-1', batch('a')])
  const first = c.resume()
  log.entries.push(['4-2', batch('b')])
  void c.resume()
  c.live(logged('4-3', 'c'))
  await first
  t.same(got, ['a', 'b', 'c'])
})

t.test('malformed logged messages are counted, not delivered', async (t) => {
  const got: string[] = []
  const c = new BusCatchUp(fakeLog(), (b) => got.push(text(b)))
  c.live(Buffer.from('99\nx'))
  c.live(Buffer.from('9-9-9\nx'))
  t.equal(got.length, 0, 'neither is delivered')
  t.equal(c.stats.malformed, 2)
})
