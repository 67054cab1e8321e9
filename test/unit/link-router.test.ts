import t from 'tap'
import { TransportRouter, type LinkPort } from '../../broker/cluster/links/router.ts'
import { waitFor } from '../helpers/wait.ts'

// The transport router (cluster/links/router.ts) against a fake link that is
// fast and a fake Redis that is slow: what arrives must be in the order
// published, whatever transport each batch took.

function harness (opts: { linkUp: boolean, redisMs: number, markerLost?: boolean }) {
  const arrived: string[] = []
  let up = opts.linkUp
  let router!: TransportRouter
  const link = {
    sendBatch: (b: Buffer) => { setImmediate(() => arrived.push(b.toString())) },
    sync: (token: number) => { setImmediate(() => router.synced('B', token)) },
    cut: () => {},
  }
  const later = (fn: () => void): void => { setTimeout(fn, opts.redisMs) }
  const port: LinkPort = {
    linkTo: () => up ? link : null,
    redisPublish: (_t, b) => new Promise((resolve) => later(() => { arrived.push(b.toString()); resolve(1) })),
    redisMarker: (_t, token) => new Promise((resolve) => later(() => { if (!opts.markerLost) router.markerAcked('B', token); resolve(1) })),
  }
  router = new TransportRouter(port, 1 << 20, 50, 1000)
  return { router, arrived, setUp: (v: boolean) => { up = v; if (v) router.linkUp('B'); else router.linkDown('B') } }
}

const send = (r: TransportRouter, name: string, durable: boolean): Promise<unknown> => r.publish('B', Buffer.from(name), durable, 1)

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
