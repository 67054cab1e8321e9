import t from 'tap'
import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import {
  FrameReader, FrameType, HANDSHAKE_MAX_FRAME, NONCE_BYTES, decodeHello, encodeChallenge, frame, newlyAcked, proof, tokenFrame,
} from '../../broker/cluster/links/protocol.ts'
import { AckCounter, LinkServer } from '../../broker/cluster/links/server.ts'
import { PeerLink, type PeerLinkOptions } from '../../broker/cluster/links/peer.ts'
import { encodeBatch } from '../../broker/cluster/codec.ts'
import { waitFor } from '../helpers/wait.ts'

// QoS 1 batches over a link (cluster/links/protocol.ts): ACKED_BATCH frames,
// acknowledged by a cumulative BATCH_ACK once delivered; an ack for a batch
// never sent, or one acknowledged already, closes the link.

const secret = randomBytes(32)

t.test('newlyAcked: counts past 2^32, refuses acks of nothing sent or already acknowledged', async (t) => {
  t.equal(newlyAcked(3, 0, 5), 3, 'three of five')
  t.equal(newlyAcked(5, 3, 5), 2, 'the rest')
  t.equal(newlyAcked(6, 3, 5), 0, 'beyond what was sent')
  t.equal(newlyAcked(3, 3, 5), 0, 'already acknowledged')
  t.equal(newlyAcked(2, 3, 5), 0, 'behind the acknowledged')
  t.equal(newlyAcked(0, 0, 0), 0, 'nothing sent')
  const big = 2 ** 32 - 2
  t.equal(newlyAcked(1, big, big + 3), 3, 'across the 32-bit wrap')
  t.equal(newlyAcked(2, big, big + 3), 0, 'past the wrap, beyond what was sent')
})

t.test('AckCounter: acknowledges in order, once per turn, whatever order deliveries complete in', async (t) => {
  const writes: number[] = []
  const c = new AckCounter((n) => writes.push(n))
  const d = [c.next(), c.next(), c.next(), c.next()]
  d[1]()
  d[2]()
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(writes, [], 'nothing while the first is not delivered')
  d[0]()
  d[0]()
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(writes, [3], 'one ack for the first three')
  d[3]()
  await new Promise((resolve) => process.nextTick(resolve))
  t.same(writes, [3, 4], 'then the fourth')
})

/** A LinkServer that delivers a batch when the test says so. */
async function receiver () {
  const pending: Array<() => void> = []
  const batches: string[] = []
  const server = new LinkServer({
    self: 'R', secret: () => secret, handshakeTimeoutMs: 2000,
    onBatch: (_from, b, delivered) => { batches.push(b.toString('latin1', 4)); if (delivered) pending.push(delivered); return true },
    onAccepted: () => {}, onRejected: () => {},
  })
  const port = await server.listen('127.0.0.1', 0)
  return { server, port, pending, batches }
}

function peer (port: number, o: Partial<PeerLinkOptions> = {}): PeerLink {
  return new PeerLink({
    self: 'S', peer: 'R', host: '127.0.0.1', port, secret: () => secret, handshakeTimeoutMs: 2000,
    onUp: () => {}, onDown: () => {}, onSynced: () => {}, onMarkerAck: () => {}, onAcked: () => {}, onFailed: () => {}, ...o,
  })
}

t.test('ACKED_BATCHes are acknowledged once delivered, cumulatively', async (t) => {
  const r = await receiver()
  const acks: number[] = []
  let up = false
  let synced = 0
  const link = peer(r.port, { onUp: () => { up = true }, onAcked: (n) => acks.push(n), onSynced: (n) => { synced = n } })
  t.teardown(() => { link.close(); r.server.close() })
  await waitFor(() => up, 'link up')
  const nums = [link.sendAcked(encodeBatch('S', [])), link.sendAcked(encodeBatch('S', [])), link.sendAcked(encodeBatch('S', []))]
  t.same(nums, [1, 2, 3], 'numbered on the connection')
  await waitFor(() => r.pending.length === 3, 'the receiver got them')
  // SYNCED comes back behind anything the receiver wrote before it.
  link.sync(7)
  await waitFor(() => synced === 7, 'a sync round trip')
  t.same(acks, [], 'no ack before delivery')
  r.pending[1]()
  r.pending[0]()
  await waitFor(() => acks.length === 1, 'an ack')
  t.same(acks, [2], 'the first two, in one ack')
  r.pending[2]()
  await waitFor(() => acks.length === 2, 'the last ack')
  t.same(acks, [2, 3])
  t.ok(link.isUp, 'the link stays up')
})

/** A receiver that completes the handshake honestly, then writes `after` (an ack of its choosing). */
async function lyingReceiver (after: Buffer): Promise<{ port: number, close(): void }> {
  const server = createServer((s) => {
    const reader = new FrameReader(HANDSHAKE_MAX_FRAME)
    const nonce = randomBytes(NONCE_BYTES)
    let hello: ReturnType<typeof decodeHello> = null
    s.on('error', () => {})
    s.on('data', (chunk) => reader.push(chunk, (type, body) => {
      if (type === FrameType.HELLO) {
        hello = decodeHello(body)!
        s.write(encodeChallenge(nonce, proof(secret, 'R', hello.nonce, nonce, hello.from, hello.to)))
      } else if (type === FrameType.AUTH) {
        s.write(frame(FrameType.READY))
        s.write(after)
      }
      return true
    }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, close: () => server.close() }
}

for (const [what, ack] of [['an ack of a batch never sent', tokenFrame(FrameType.BATCH_ACK, 1)], ['an ack of the wrong size', frame(FrameType.BATCH_ACK, Buffer.alloc(3))]] as const) {
  t.test(`${what} closes the link, reported as bad`, async (t) => {
    const r = await lyingReceiver(ack)
    const failures: string[] = []
    let downs = 0
    const acks: number[] = []
    const link = peer(r.port, { onFailed: (reason) => failures.push(reason), onDown: () => { downs++ }, onAcked: (n) => acks.push(n) })
    t.teardown(() => { link.close(); r.close() })
    await waitFor(() => downs > 0, 'the link went down')
    t.same(failures.slice(0, 1), [ack.length === 9 ? 'bad_ack' : 'malformed'], 'the reason')
    t.same(acks, [], 'the ack was not taken')
  })
}
