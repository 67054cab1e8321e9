import t from 'tap'
import { FrameReader, FrameType, decodeHello, encodeHello, frame, proof } from '../../broker/cluster/links/protocol.ts'
import { batchOrigin, decodeMarker, encodeBatch, encodeMarker } from '../../broker/cluster/codec.ts'

// The link wire format (cluster/links/protocol.ts) and the bus markers (codec.ts).

t.test('FrameReader yields the same frames however the stream is split', async (t) => {
  const frames = [frame(FrameType.BATCH, Buffer.alloc(3, 1)), frame(FrameType.SYNC, Buffer.from([0, 0, 0, 7])), frame(FrameType.BATCH, Buffer.alloc(70_000, 2)), frame(FrameType.READY)]
  const stream = Buffer.concat(frames)
  const expected = frames.map((f) => [f[4], f.length - 5])
  for (const step of [1, 2, 3, 5, 4096, 65_536, stream.length]) {
    const r = new FrameReader(1 << 20)
    const got: Array<[number, number]> = []
    let ok = true
    for (let i = 0; i < stream.length; i += step) {
      ok = r.push(stream.subarray(i, i + step), (type, body) => { got.push([type, body.length]); return true }) && ok
    }
    t.ok(ok, `chunks of ${step} bytes: accepted`)
    t.same(got, expected, `chunks of ${step} bytes: every frame`)
  }
  const r = new FrameReader(1 << 20)
  let body: Buffer | null = null
  r.push(stream.subarray(0, 20_000), () => true)
  r.push(stream.subarray(20_000), (type, b) => { if (b.length === 70_000) body = Buffer.from(b); return true })
  t.ok(body !== null && (body as Buffer).every((x) => x === 2), 'a frame across reads is joined intact')
})

t.test('FrameReader refuses frames over the limit and empty ones, split or not', async (t) => {
  const big = Buffer.from([0, 0, 4, 1, FrameType.BATCH])
  t.equal(new FrameReader(1024).push(big, () => true), false, 'over the limit')
  const r = new FrameReader(1024)
  t.equal(r.push(big.subarray(0, 2), () => true), true, 'half a header: waits')
  t.equal(r.push(big.subarray(2), () => true), false, 'then refused')
  t.equal(new FrameReader(1024).push(Buffer.from([0, 0, 0, 0]), () => true), false, 'zero length')
  let calls = 0
  t.equal(new FrameReader(1024).push(Buffer.concat([frame(1), frame(1)]), () => { calls++; return false }), false, 'onFrame can stop the reader')
  t.equal(calls, 1, 'nothing after a refused frame')
})

t.test('HELLO round trip; malformed ones are null', async (t) => {
  const nonce = Buffer.alloc(16, 9)
  const f = encodeHello({ version: 1, nonce, from: 'a~1', to: 'b~2' })
  t.same(decodeHello(f.subarray(5)), { version: 1, nonce, from: 'a~1', to: 'b~2' })
  t.equal(decodeHello(f.subarray(5, f.length - 1)), null, 'truncated')
  t.equal(decodeHello(Buffer.concat([f.subarray(5), Buffer.from([0])])), null, 'trailing byte')
  t.equal(decodeHello(encodeHello({ version: 1, nonce, from: '', to: 'b' }).subarray(5)), null, 'empty sender')
})

t.test('proofs differ by role, secret, nonces and ids', async (t) => {
  const s = Buffer.from('secret-secret-secret')
  const n1 = Buffer.alloc(16, 1)
  const n2 = Buffer.alloc(16, 2)
  const base = proof(s, 'S', n1, n2, 'a', 'b').toString('hex')
  for (const other of [proof(s, 'R', n1, n2, 'a', 'b'), proof(Buffer.from('other'), 'S', n1, n2, 'a', 'b'), proof(s, 'S', n2, n1, 'a', 'b'), proof(s, 'S', n1, n2, 'b', 'a'), proof(s, 'S', n1, n2, 'a/', 'b')]) {
    t.not(other.toString('hex'), base)
  }
})

t.test('markers round trip and are told apart from batches', async (t) => {
  const m = encodeMarker('node~x', 4_000_000_000)
  t.same(decodeMarker(m), { origin: 'node~x', token: 4_000_000_000 })
  t.equal(decodeMarker(m.subarray(0, m.length - 1)), null, 'truncated')
  t.equal(decodeMarker(encodeBatch('node~x', [])), null, 'a batch is no marker')
  t.equal(batchOrigin(encodeBatch('node~x', [Buffer.alloc(20)])), 'node~x')
  t.equal(batchOrigin(m), null, 'a marker is no batch')
})
