import t from 'tap'
import { createServer, type AddressInfo } from 'node:net'
import { Aedes } from 'aedes'
import { installDeliverers } from '../../broker/mqtt/delivery.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

const MARK = Symbol('test.qos0-delivery')
installDeliverers(MARK)

/** An in-process aedes on a free port; `marked` ones get thingmesh's QoS 0 deliverer. */
async function broker (marked: boolean): Promise<{ port: number, duplicateReads: () => number, stop: () => Promise<void> }> {
  const b = await Aedes.createBroker()
  if (marked) (b as unknown as Record<symbol, boolean>)[MARK] = true
  let reads = 0
  // aedes' dedupe reads client.duplicates on every delivery it makes.
  const counting = new Proxy({}, { get: () => { reads++; return 0 }, set: () => true })
  b.on('client', (c) => { (c as unknown as { duplicates: object }).duplicates = counting })
  const server = createServer(b.handle as never)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    duplicateReads: () => reads,
    stop: async () => { await new Promise<void>((resolve) => b.close(() => resolve())); await new Promise<void>((resolve) => server.close(() => resolve())) },
  }
}

for (const marked of [true, false]) {
  t.test(`${marked ? 'a marked' : 'an unmarked'} broker delivers QoS 0 in order to every subscriber`, async (t) => {
    const b = await broker(marked)
    const subs = await Promise.all([0, 1, 2].map((i) => connect(b.port, { clientId: `s${i}` })))
    const got = subs.map(collect)
    for (const s of subs) await s.subscribeAsync('d/+', { qos: 0 })
    const pub = await connect(b.port, { clientId: 'p' })
    for (let i = 0; i < 50; i++) pub.publish('d/x', String(i), { qos: 0 })
    // Published at QoS 1, delivered at the QoS 0 the subscribers were granted.
    await pub.publishAsync('d/y', 'last', { qos: 1 })
    await waitFor(() => got.every((g) => g.length === 51), 'every delivery')
    for (const g of got) {
      t.same(g.map((m) => m.payload), [...Array.from({ length: 50 }, (_, i) => String(i)), 'last'], 'in publish order')
      t.ok(g.every((m) => m.qos === 0), 'at QoS 0')
    }
    if (marked) t.equal(b.duplicateReads(), 0, "thingmesh's deliverer does not consult client.duplicates")
    else t.ok(b.duplicateReads() >= 153, "aedes' own deliverer still does")
    await close(pub, ...subs)
    await b.stop()
  })
}

t.test('a marked broker skips a subscriber whose authorizeForward refuses, and still completes the publish', async (t) => {
  const b = await Aedes.createBroker({ authorizeForward: (client, packet) => client.id === 'denied' ? null : packet })
  ;(b as unknown as Record<symbol, boolean>)[MARK] = true
  const server = createServer(b.handle as never)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const ok = await connect(port, { clientId: 'allowed' })
  const no = await connect(port, { clientId: 'denied' })
  const gotOk = collect(ok)
  const gotNo = collect(no)
  await ok.subscribeAsync('f', { qos: 0 })
  await no.subscribeAsync('f', { qos: 0 })
  const pub = await connect(port, { clientId: 'p' })
  await pub.publishAsync('f', 'one', { qos: 1 })
  await pub.publishAsync('f', 'two', { qos: 1 })
  await waitFor(() => gotOk.length === 2, 'both to the allowed subscriber')
  t.same(gotOk.map((m) => m.payload), ['one', 'two'])
  t.equal(gotNo.length, 0, 'none to the refused one')
  await close(pub, ok, no)
  await new Promise<void>((resolve) => b.close(() => resolve()))
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

t.test("a marked broker's client gets its deliverers on first use, not when it connects", async (t) => {
  const b = await Aedes.createBroker()
  ;(b as unknown as Record<symbol, boolean>)[MARK] = true
  const clients: Array<Record<string, unknown>> = []
  b.on('client', (c) => { clients.push(c as unknown as Record<string, unknown>) })
  const server = createServer(b.handle as never)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const idle = await connect(port, { clientId: 'idle' })
  const sub = await connect(port, { clientId: 'sub' })
  await waitFor(() => clients.length === 2, 'both clients')
  // An idle connection holds no deliverer (a closure, its context and its property dictionary each).
  for (const c of clients) {
    t.notOk(Object.hasOwn(c, 'deliver0'), `${c.id as string}: no deliver0 yet`)
    t.notOk(Object.hasOwn(c, 'deliverQoS'), `${c.id as string}: no deliverQoS yet`)
  }
  const got = collect(sub)
  await sub.subscribeAsync('lazy/1', { qos: 1 })
  await idle.publishAsync('lazy/1', 'one', { qos: 1 })
  await waitFor(() => got.length === 1, 'the delivery')
  const subClient = clients.find((c) => c.id === 'sub')!
  t.ok(Object.hasOwn(subClient, 'deliverQoS'), 'made when the subscription took it')
  t.equal(subClient.deliverQoS, subClient.deliverQoS, 'made once')
  t.notOk(Object.hasOwn(clients.find((c) => c.id === 'idle')!, 'deliverQoS'), 'still none for the publisher')
  await close(idle, sub)
  await new Promise<void>((resolve) => b.close(() => resolve()))
  await new Promise<void>((resolve) => server.close(() => resolve()))
})
