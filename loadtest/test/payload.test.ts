import t from 'tap'
import { decodePayload, encodePayload, nowUs } from '../payload.ts'

t.test('round trip with and without padding', async (t) => {
  const ts = nowUs()
  const small = encodePayload('pub-1', 42, ts)
  t.equal(small.toString(), `pub-1:42:${ts}`)
  t.same(decodePayload(small), { publisherId: 'pub-1', seq: 42, sendTsUs: ts })
  const big = encodePayload('pub-1', 7, ts, 256)
  t.equal(big.length, 256)
  t.same(decodePayload(big), { publisherId: 'pub-1', seq: 7, sendTsUs: ts })
  t.equal(encodePayload('p', 1, 5, 3).toString(), 'p:1:5', 'size below the header keeps the header')
})

t.test('foreign payloads decode to null', async (t) => {
  for (const s of ['', 'hello', 'a:b:c', ':1:2', 'a:0:5', 'a:1:', '{"json":1}']) {
    t.equal(decodePayload(Buffer.from(s)), null, JSON.stringify(s))
  }
})
