import t from 'tap'
import { Writable } from 'node:stream'
import { flushCorked, flushHeld, holdCork, writeHeld } from '../../broker/mqtt/cork.ts'

/** A stream recording each chunk its _write/_writev receives, i.e. each write that would be a syscall. */
function sink (highWaterMark = 16 * 1024): Writable & { calls: Buffer[][], bytes(): string } {
  const calls: Buffer[][] = []
  const s = new Writable({
    highWaterMark,
    write (chunk: Buffer, _e, cb) { calls.push([chunk]); cb() },
    writev (chunks, cb) { calls.push(chunks.map((c) => c.chunk as Buffer)); cb() },
  }) as Writable & { calls: Buffer[][], bytes(): string }
  s.calls = calls
  s.bytes = () => Buffer.concat(calls.flat()).toString()
  return s
}

t.test('packets queued in one turn leave together, in order, when flushed', async (t) => {
  const a = sink()
  const b = sink()
  for (const c of ['1', '2', '3']) t.equal(writeHeld(a, Buffer.from(c)), true)
  writeHeld(b, Buffer.from('x'))
  t.same(a.calls, [], 'nothing written before the flush')
  flushCorked()
  t.same(a.calls.map((c) => c.map(String)), [['123']], 'one chunk for the socket')
  t.equal(b.bytes(), 'x')
})

t.test('anything else written goes after what was queued', async (t) => {
  const a = sink()
  writeHeld(a, Buffer.from('q0;'))
  // What wire-patches does before any other write (PUBACK, SUBACK, a QoS1 PUBLISH).
  flushHeld(a)
  holdCork(a)
  a.write('other;')
  writeHeld(a, Buffer.from('q0b;'))
  flushCorked()
  t.equal(a.bytes(), 'q0;other;q0b;')
  t.equal(a.calls.length, 1, 'still one write')
})

t.test('a socket that would fill gets its bytes at once and reports full, so it emits drain', async (t) => {
  const a = sink(100)
  t.equal(writeHeld(a, Buffer.alloc(60, 'a')), true)
  t.equal(writeHeld(a, Buffer.alloc(60, 'b')), false, 'full')
  t.equal(a.writableLength, 120, 'handed to the socket, still corked')
  const drained = new Promise((resolve) => a.once('drain', resolve))
  flushCorked()
  await drained
  t.equal(a.bytes(), 'a'.repeat(60) + 'b'.repeat(60))
})

t.test('without an explicit flush, the next turn flushes', async (t) => {
  const a = sink()
  writeHeld(a, Buffer.from('later'))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(a.bytes(), 'later')
  t.equal(a.writableCorked, 0, 'uncorked')
})

t.test('a destroyed socket is not written to', async (t) => {
  const a = sink()
  a.destroy()
  t.equal(writeHeld(a, Buffer.from('x')), false)
  flushCorked()
  t.same(a.calls, [])
})

t.test('once the socket is full, more packets wait for the flush and still report full', async (t) => {
  const a = sink(100)
  writeHeld(a, Buffer.alloc(60, 'a'))
  t.equal(writeHeld(a, Buffer.alloc(60, 'b')), false, 'full: handed over')
  t.equal(writeHeld(a, Buffer.alloc(10, 'c')), false, 'still full')
  t.equal(a.writableLength, 120, 'not handed over one by one')
  const drained = new Promise((resolve) => a.once('drain', resolve))
  flushCorked()
  await drained
  t.equal(a.bytes(), 'a'.repeat(60) + 'b'.repeat(60) + 'c'.repeat(10), 'all of it, in order')
  t.equal(a.calls.length, 1, 'in one write')
})
