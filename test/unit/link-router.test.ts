import t from 'tap'
import { TransportRouter, type Durability, type LinkPort } from '../../broker/cluster/links/router.ts'
import { waitFor } from '../helpers/wait.ts'

// The transport router (cluster/links/router.ts) against a fake link that is
// fast and a fake Redis that is slow: what arrives must be in the order
// published, whatever transport each batch took.

function harness (opts: { linkUp: boolean, redisMs: number, markerLost?: boolean, withholdAcks?: boolean, ackTimeoutMs?: number }) {
  const arrived: string[] = []
  /** Through Redis with the replay log (durable), by name. */
  const logged: string[] = []
  let up = opts.linkUp
  let router!: TransportRouter
  let seq = 0
  const cuts: string[] = []
  const link = {
    sendBatch: (b: Buffer) => { setImmediate(() => arrived.push(b.toString())) },
    sendAcked: (b: Buffer) => {
      const n = ++seq
      setImmediate(() => { arrived.push(b.toString()); if (!opts.withholdAcks && up) router.acked('B', n) })
      return n
    },
    sync: (token: number) => { setImmediate(() => router.synced('B', token)) },
    cut: (reason: string) => { cuts.push(reason); up = false },
  }
  const later = (fn: () => void): void => { setTimeout(fn, opts.redisMs) }
  const port: LinkPort = {
    linkTo: () => up ? link : null,
    redisPublish: (_t, b, durable) => new Promise((resolve) => later(() => { arrived.push(b.toString()); if (durable) logged.push(b.toString()); resolve(1) })),
    redisMarker: (_t, token) => new Promise((resolve) => later(() => { if (!opts.markerLost) router.markerAcked('B', token); resolve(1) })),
  }
  router = new TransportRouter(port, 1 << 20, 50, 1000, opts.ackTimeoutMs ?? 1000, () => true)
  return { router, arrived, logged, cuts, setUp: (v: boolean) => { up = v; if (v) { seq = 0; router.linkUp('B') } else router.linkDown('B') } }
}

/** durable: a QoS 2 batch, which always takes Redis (QoS 1 takes the link, acknowledged). */
const send = (r: TransportRouter, name: string, durable: boolean | Durability): Promise<unknown> =>
  r.publish('B', Buffer.from(name), durable === true ? 2 : durable === false ? 0 : durable, 1)

t.test('QoS 0 after a durable batch waits for the marker; durable after link batches waits for the sync', async (t) => {
  const { router, arrived } = harness({ linkUp: true, redisMs: 5 })
  const names: string[] = []
  const all: Array<Promise<unknown>> = []
  for (let i = 0; i < 40; i++) {
    const durable = i % 5 === 2
    names.push(`${i}`)
    all.push(send(router, `${i}`, durable))
  }
  await Promise.all(all)
  await waitFor(() => arrived.length >= names.length, 'every batch arrived')
  t.same(arrived, names, 'arrived in the order published')
  t.ok(router.stats.linkBatches > 0 && router.stats.redisBatches > 0, 'both transports used')
  t.ok(router.stats.switches >= 14, 'every change of transport waited')
})

t.test('batches sent through Redis while the link was down are not overtaken when it comes back', async (t) => {
  const h = harness({ linkUp: false, redisMs: 5 })
  const names = Array.from({ length: 20 }, (_, i) => `${i}`)
  const all: Array<Promise<unknown>> = []
  for (const n of names.slice(0, 10)) all.push(send(h.router, n, false))
  h.setUp(true)
  for (const n of names.slice(10)) all.push(send(h.router, n, false))
  await Promise.all(all)
  await waitFor(() => h.arrived.length >= names.length, 'every batch arrived')
  t.same(h.arrived, names, 'in order')
  t.equal(h.router.stats.redisBatches, 10, 'the first ten through Redis')
  t.equal(h.router.stats.linkBatches, 10, 'the rest over the link, once the marker came back')
})

t.test('a lost marker sends what waits for it through Redis, in order', async (t) => {
  const h = harness({ linkUp: true, redisMs: 5, markerLost: true })
  const all = [send(h.router, 'd0', true), send(h.router, 'q1', false), send(h.router, 'q2', false)]
  await Promise.all(all)
  await waitFor(() => h.arrived.length >= 3, 'every batch arrived')
  t.same(h.arrived, ['d0', 'q1', 'q2'], 'in order')
  t.equal(h.router.stats.markerTimeouts, 1, 'the timeout counted')
  t.equal(h.router.stats.redisBatches, 3, 'all through Redis')
})

t.test('a link that goes down while a durable batch waits for its sync releases it to Redis', async (t) => {
  const h = harness({ linkUp: true, redisMs: 5 })
  const q = send(h.router, 'q0', false)
  // The fake answers SYNC on the next turn; the link drops first.
  const d = send(h.router, 'd1', true)
  h.setUp(false)
  await Promise.all([q, d])
  await waitFor(() => h.arrived.length >= 2, 'both batches arrived')
  t.same(h.arrived, ['q0', 'd1'], 'both arrived, in order')
})

t.test('QoS 1 batches take the link and complete only when the target acknowledges them', async (t) => {
  const h = harness({ linkUp: true, redisMs: 5, withholdAcks: true })
  let done = 0
  const all = ['a0', 'a1', 'a2'].map((n) => send(h.router, n, 1).then(() => { done++ }))
  await waitFor(() => h.arrived.length >= 3, 'the batches arrived over the link')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(done, 0, 'no publisher completed before the ack')
  h.router.acked('B', 2)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(done, 2, 'an ack completes the batches up to it')
  h.router.acked('B', 3)
  await Promise.all(all)
  t.same(h.logged, [], 'nothing through the replay log')
  t.equal(h.router.stats.linkAcked, 3, 'acks counted')
  t.equal(h.router.stats.redisBatches, 0, 'none through Redis')
})

t.test('a link lost before the ack: the unacknowledged QoS 1 batches go through the replay log, before anything newer', async (t) => {
  const h = harness({ linkUp: true, redisMs: 5, withholdAcks: true })
  const first = ['a0', 'a1', 'a2'].map((n) => send(h.router, n, 1))
  await waitFor(() => h.arrived.length >= 3, 'the batches arrived over the link')
  h.router.acked('B', 1)
  h.setUp(false)
  const later = [send(h.router, 'b0', 1), send(h.router, 'b1', 0), send(h.router, 'b2', 2)]
  await Promise.all([...first, ...later])
  await waitFor(() => h.arrived.length >= 8, 'resends and later batches arrived')
  t.same(h.arrived, ['a0', 'a1', 'a2', 'a1', 'a2', 'b0', 'b1', 'b2'], 'the unacknowledged ones again, then the later ones, in order')
  t.same(h.logged, ['a1', 'a2', 'b0', 'b2'], 'QoS 1/2 through the replay log, QoS 0 as a plain publish')
  t.equal(h.router.stats.resent, 2, 'resends counted')
})

t.test('an ack later than the bound cuts the link and resends through the replay log', async (t) => {
  const h = harness({ linkUp: true, redisMs: 5, withholdAcks: true, ackTimeoutMs: 50 })
  const all = [send(h.router, 'a0', 1), send(h.router, 'a1', 1)]
  await Promise.all(all)
  t.same(h.cuts, ['ack_timeout'], 'the link was cut')
  t.same(h.logged, ['a0', 'a1'], 'both went again through the replay log, in order')
  t.equal(h.router.stats.ackTimeouts, 1, 'the timeout counted')
})

t.test('mixed QoS 0 / 1 / 2 batches arrive in the order published', async (t) => {
  const { router, arrived } = harness({ linkUp: true, redisMs: 5 })
  const names: string[] = []
  const all: Array<Promise<unknown>> = []
  for (let i = 0; i < 60; i++) {
    names.push(`${i}`)
    all.push(send(router, `${i}`, (i % 7 === 3 ? 2 : i % 3 === 0 ? 1 : 0) as Durability))
  }
  await Promise.all(all)
  await waitFor(() => arrived.length >= names.length, 'every batch arrived')
  t.same(arrived, names, 'in order')
  t.ok(router.stats.linkAcked > 0, 'QoS 1 batches acknowledged over the link')
})
