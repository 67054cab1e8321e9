import t from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { connect as tcpConnect, createServer, type Socket } from 'node:net'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess, stopAll, type NodeProcess } from '../helpers/node.ts'
import { freePort } from '../helpers/ports.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Direct node-to-node links (broker/cluster/links/): QoS 0 bus traffic takes
// the link, falls back to Redis while it is cut, keeps its order across the
// switch and with QoS 1 in between; a connection without the cluster secret
// is refused and changes nothing.

/** A TCP relay in front of B's link port, so the test can cut A's link to B. */
async function relay (to: number): Promise<{ port: number, cut(): void, heal(): void, holdReplies(): void, close(): void }> {
  const sockets = new Set<Socket>()
  let open = true
  /** Replies (B to A) are swallowed until the next cut: acks that never arrive. */
  let holding = false
  const server = createServer((a) => {
    if (!open) { a.destroy(); return }
    const b = tcpConnect(to, '127.0.0.1')
    for (const s of [a, b]) { sockets.add(s); s.on('error', () => {}); s.on('close', () => { sockets.delete(s); a.destroy(); b.destroy() }) }
    a.pipe(b)
    b.on('data', (d) => { if (!holding) a.write(d) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as { port: number }).port,
    cut () { open = false; holding = false; for (const s of sockets) s.destroy() },
    holdReplies () { holding = true },
    heal () { open = true },
    close () { open = false; server.close(); for (const s of sockets) s.destroy() },
  }
}

const redis = await startRedis()
const bLinkPort = await freePort()
const proxy = await relay(bLinkPort)
const A = await startNodeProcess({ redis: redis.url, nodeId: 'A' })
const B = await startNodeProcess({ redis: redis.url, nodeId: 'B', args: ['--link-port', String(bLinkPort), '--link-advertise', `127.0.0.1:${proxy.port}`] })
const nodes: NodeProcess[] = [A, B]
t.teardown(async () => { await stopAll(nodes); proxy.close(); await redis.stop() })

const transport = async (n: NodeProcess, tr: 'link' | 'redis', dir: 'sent' | 'received'): Promise<number> =>
  Number(new RegExp(`^thingmesh_bus_transport_messages_total\\{transport="${tr}",direction="${dir}"\\} (\\d+)`, 'm').exec(await n.metrics())?.[1] ?? 0)
const linkEvents = async (n: NodeProcess, event: string): Promise<number> =>
  Number(new RegExp(`^thingmesh_cluster_link_events_total\\{event="${event}"\\} (\\d+)`, 'm').exec(await n.metrics())?.[1] ?? 0)
const linkUp = async (from: NodeProcess): Promise<boolean> => {
  const links = (await from.health()).body.links as Record<string, string> | undefined
  return links !== undefined && Object.values(links).length === 1 && Object.values(links)[0] === 'up'
}
await waitFor(async () => await linkUp(A) && await linkUp(B), 'links up both ways')

const pub = await connect(A.port, { clientId: 'link-pub' })
const sub = await connect(B.port, { clientId: 'link-sub' })
const got = collect(sub)
t.teardown(() => close(pub, sub))
let seq = 0
/** Publishes n numbered messages on `topic` without waiting between them; resolves when all are written (QoS 1: acknowledged). */
async function burst (topic: string, n: number, qosOf: (i: number) => 0 | 1 = () => 0): Promise<string[]> {
  const sent: string[] = []
  const acks: Array<Promise<unknown>> = []
  for (let i = 0; i < n; i++) {
    const payload = String(seq++)
    sent.push(payload)
    acks.push(pub.publishAsync(topic, payload, { qos: qosOf(i) }))
  }
  await Promise.all(acks)
  return sent
}
const receivedOn = (topic: string): string[] => got.filter((m) => m.topic === topic).map((m) => m.payload)

t.test('QoS 0 to another node goes over the link, in order, not through Redis', async (t) => {
  await sub.subscribeAsync('lk/q0', { qos: 0 })
  const [linkBefore, redisBefore] = [await transport(A, 'link', 'sent'), await transport(A, 'redis', 'sent')]
  const sent = await burst('lk/q0', 300)
  await waitFor(() => receivedOn('lk/q0').length >= 300, 'QoS 0 burst on B')
  t.same(receivedOn('lk/q0'), sent, 'each once, in order')
  t.ok(await transport(A, 'link', 'sent') - linkBefore >= 300, 'A sent them over the link')
  t.equal(await transport(A, 'redis', 'sent') - redisBefore, 0, 'none through Redis')
  t.ok(await transport(B, 'link', 'received') >= 300, 'B counts them as received over the link')
})

// [MQTT-4.6.0-6] orders a topic per QoS (aedes itself may let a QoS 0
// publish overtake an earlier QoS 1 one on the same node: the QoS 1 one is
// queued for offline sessions first). A bus batch holding a QoS 1 frame also
// carries the QoS 0 frames of its turn and goes through Redis; the QoS 0-only
// batch after it takes the link and must not overtake it.
t.test('mixed QoS 0 / QoS 1 to one topic: each QoS in order across the two transports', async (t) => {
  await sub.subscribeAsync('lk/mixed', { qos: 1 })
  const [linkBefore, redisBefore] = [await transport(A, 'link', 'sent'), await transport(A, 'redis', 'sent')]
  // Runs of QoS 0 between single QoS 1 publishes: every run switches transport twice.
  const qosOf = (i: number): 0 | 1 => i % 7 === 3 ? 1 : 0
  // One publish per millisecond or so: each lands in its own turn on A, so QoS 0-only batches
  // (link) follow batches with a QoS 1 frame (Redis) and the other way round, without waiting
  // for the acknowledgements in between.
  const sent: string[] = []
  const acks: Array<Promise<unknown>> = []
  for (let i = 0; i < 280; i++) {
    const payload = String(seq++)
    sent.push(payload)
    acks.push(pub.publishAsync('lk/mixed', payload, { qos: qosOf(i) }))
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await Promise.all(acks)
  await waitFor(() => receivedOn('lk/mixed').length >= 280, 'mixed stream on B')
  const mixed = got.filter((m) => m.topic === 'lk/mixed')
  for (const qos of [0, 1]) {
    t.same(mixed.filter((m) => m.qos === qos).map((m) => m.payload), sent.filter((_, i) => qosOf(i) === qos), `QoS ${qos}: each once, in the order published`)
  }
  // How many took each transport depends on how the publishes fell into A's event-loop turns
  // (on a loaded box one turn may hold a whole run, and all of it goes through Redis);
  // test/unit/link-router.test.ts covers the switching itself.
  t.comment(`over the link: ${await transport(A, 'link', 'sent') - linkBefore}, through Redis: ${await transport(A, 'redis', 'sent') - redisBefore}`, (await A.metrics()).split('\n').filter((l) => l.startsWith('thingmesh_cluster_link_marker')).join(' '))
})

t.test('a cut link falls back to Redis, keeps the order and comes back', async (t) => {
  await sub.subscribeAsync('lk/cut', { qos: 0 })
  const redisBefore = await transport(A, 'redis', 'sent')
  const first = await burst('lk/cut', 100)
  // QoS 0 is at most once: what is still in the relay when it is cut is gone, so cut only once all arrived.
  await waitFor(() => receivedOn('lk/cut').length >= 100, 'messages before the cut')
  proxy.cut()
  // Whatever fails below, the later tests need the link back.
  t.teardown(() => proxy.heal())
  await waitFor(async () => !(await linkUp(A)), 'A sees its link to B down')
  const during = await burst('lk/cut', 100)
  await waitFor(() => receivedOn('lk/cut').length >= 200, 'messages sent during the cut')
  t.ok(await transport(A, 'redis', 'sent') - redisBefore >= 100, 'those went through Redis')
  proxy.heal()
  await waitFor(() => linkUp(A), 'the link is back')
  const linkBefore = await transport(A, 'link', 'sent')
  const after = await burst('lk/cut', 100)
  await waitFor(() => receivedOn('lk/cut').length >= 300, 'messages after the link came back')
  t.same(receivedOn('lk/cut'), [...first, ...during, ...after], 'all of them, in order')
  t.ok(await transport(A, 'link', 'sent') - linkBefore >= 100, 'after the cut, over the link again')
  t.ok(await linkEvents(A, 'down') >= 1, 'link down counted')
})

const qos1Batches = async (n: NodeProcess, outcome: 'acked' | 'resent'): Promise<number> =>
  Number(new RegExp(`^thingmesh_cluster_link_qos1_batches_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(await n.metrics())?.[1] ?? 0)

// QoS 1 takes the link, acknowledged by B once delivered; PUBACK waits for that ack. The relay
// first swallows B's acks (B delivered, A does not know), then the link is cut mid-stream: the
// unacknowledged batches go again through Redis, before anything newer.
t.test('QoS 1 over the link: every PUBACKed message arrives, in order, when the link is cut mid-stream', async (t) => {
  await sub.subscribeAsync('lk/q1cut', { qos: 1 })
  const [linkBefore, ackedBefore, resentBefore] = [await transport(A, 'link', 'sent'), await qos1Batches(A, 'acked'), await qos1Batches(A, 'resent')]
  const N = 3000
  const acked: string[] = []
  const sent: string[] = []
  let next = 0
  // 10 in flight, like the bench's publishers: each PUBACK lets the next one go.
  const lane = async (): Promise<void> => {
    while (next < N) {
      const payload = `q${next++}`
      sent.push(payload)
      await pub.publishAsync('lk/q1cut', payload, { qos: 1 })
      acked.push(payload)
    }
  }
  const lanes = Promise.all(Array.from({ length: 10 }, lane))
  t.teardown(() => proxy.heal())
  await waitFor(() => acked.length >= 800, '800 acknowledged over the link')
  proxy.holdReplies()
  const heldAt = acked.length
  await waitFor(() => receivedOn('lk/q1cut').length >= acked.length + 5, 'B delivered messages A has no ack for')
  t.ok(acked.length - heldAt <= 10, 'without acks, no more PUBACKs than were on their way')
  const linkSentAtCut = await transport(A, 'link', 'sent') - linkBefore
  proxy.cut()
  await waitFor(async () => !(await linkUp(A)), 'A sees its link to B down')
  await waitFor(() => acked.length >= 1600, '1600 acknowledged')
  proxy.heal()
  await waitFor(() => linkUp(A), 'the link is back')
  await lanes
  const arrived = receivedOn('lk/q1cut')
  await waitFor(() => new Set(receivedOn('lk/q1cut')).size >= N, 'every acknowledged message on B')
  const firsts = [...new Set(receivedOn('lk/q1cut'))]
  t.same(acked.filter((m) => !firsts.includes(m)), [], 'none of the acknowledged messages lost')
  t.same(firsts, sent, 'first arrivals in the order published')
  t.ok(linkSentAtCut >= 800, 'before the cut, over the link')
  t.ok(await qos1Batches(A, 'acked') - ackedBefore > 0, 'B acknowledged batches over the link')
  t.ok(await qos1Batches(A, 'resent') - resentBefore > 0, 'the unacknowledged ones were sent again')
  t.comment(`resent through Redis after the cut: ${await qos1Batches(A, 'resent') - resentBefore} batches; duplicates at B: ${receivedOn('lk/q1cut').length - firsts.length}; ${arrived.length} before the last wait`)
})

t.test('connections without the cluster secret are refused; nothing else is affected', async (t) => {
  const authBefore = await linkEvents(B, 'rejected_auth')
  const malformedBefore = await linkEvents(B, 'rejected_malformed')
  const bId = Object.keys((await A.health()).body.links as Record<string, string>)[0]
  /** Writes `bytes`, then resolves with everything B sent back once B closed the connection. */
  const talk = (bytes: (reply: Buffer) => Buffer | null, first: Buffer): Promise<Buffer> => new Promise((resolve, reject) => {
    const s = tcpConnect(bLinkPort, '127.0.0.1')
    let got = Buffer.alloc(0)
    s.on('error', () => {})
    s.on('connect', () => s.write(first))
    s.on('data', (d) => { got = Buffer.concat([got, d]); const next = bytes(got); if (next) s.write(next) })
    s.on('close', () => resolve(got))
    setTimeout(() => { s.destroy(); reject(new Error('B did not close the connection')) }, 8000)
  })
  const frame = (type: number, body: Buffer): Buffer => { const h = Buffer.alloc(5); h.writeUInt32BE(body.length + 1); h[4] = type; return Buffer.concat([h, body]) }
  const hello = (from: string, to: string): Buffer => {
    const f = Buffer.from(from); const to2 = Buffer.from(to)
    const u16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
    return frame(0x10, Buffer.concat([Buffer.from([1]), randomBytes(16), u16(f.length), f, u16(to2.length), to2]))
  }
  // 1. Garbage instead of a handshake.
  await talk(() => null, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  // 2. A batch before authenticating.
  await talk(() => null, frame(0x01, Buffer.from([0xb2, 0, 1, 0x41])))
  // 3. A frame announced far over the limit.
  await talk(() => null, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01]))
  // 4. A well-formed handshake with a proof made with the wrong secret, claiming to be A.
  const aId = Object.keys((await B.health()).body.links as Record<string, string>)[0]
  let answered = false
  const reply = await talk((r) => {
    if (answered || r.length < 5 + 48) return null
    answered = true
    return frame(0x12, createHmac('sha256', 'not-the-secret').update(r).digest())
  }, hello(aId, bId))
  t.equal(reply[4], 0x11, 'B answered HELLO with its challenge')
  t.notOk(reply.includes(Buffer.from([0, 0, 0, 1, 0x13])), 'but never with READY')
  await waitFor(async () => await linkEvents(B, 'rejected_malformed') - malformedBefore >= 3 && await linkEvents(B, 'rejected_auth') - authBefore >= 1, 'refusals counted')
  await waitFor(() => /BROKER_LINK_REJECTED/.test(B.log()), 'the refusal logged with its code')
  t.ok(await linkUp(A), "A's own link to B is still up")
  await sub.subscribeAsync('lk/after', { qos: 0 })
  const linkBefore = await transport(A, 'link', 'sent')
  const sent = await burst('lk/after', 50)
  await waitFor(() => receivedOn('lk/after').length >= 50, 'delivery after the refusals')
  t.same(receivedOn('lk/after'), sent, 'delivered in order')
  t.ok(await transport(A, 'link', 'sent') - linkBefore >= 50, 'still over the link')
})

t.test('a restarted peer gets a new link to its new incarnation', async (t) => {
  const upBefore = await linkEvents(A, 'up')
  const oldB = Object.keys((await A.health()).body.links as Record<string, string>)
  t.equal(oldB.length, 1, 'A has its link to B')
  await B.kill('SIGTERM')
  const B2 = await startNodeProcess({ redis: redis.url, nodeId: 'B', args: ['--link-port', String(bLinkPort), '--link-advertise', `127.0.0.1:${proxy.port}`] })
  nodes.push(B2)
  await waitFor(async () => {
    const links = (await A.health()).body.links as Record<string, string>
    const ids = Object.keys(links)
    return ids.length === 1 && !oldB.includes(ids[0]) && links[ids[0]] === 'up'
  }, 'A linked to the new incarnation of B only')
  t.ok(await linkEvents(A, 'up') > upBefore, 'a new link came up')
  const sub2 = await connect(B2.port, { clientId: 'link-sub2' })
  const got2 = collect(sub2)
  await sub2.subscribeAsync('lk/restart', { qos: 0 })
  // The subscription reaches A through Redis (interest notice): wait until a probe arrives.
  await waitFor(async () => { await pub.publishAsync('lk/restart', 'probe'); return got2.length > 0 }, 'routed to the new B')
  const linkBefore = await transport(A, 'link', 'sent')
  const sent = await burst('lk/restart', 100)
  await waitFor(() => got2.filter((m) => m.payload !== 'probe').length >= 100, 'burst on the new B')
  t.same(got2.filter((m) => m.payload !== 'probe').map((m) => m.payload), sent, 'in order')
  t.ok(await transport(A, 'link', 'sent') - linkBefore >= 100, 'over the link')
  await close(sub2)
})
