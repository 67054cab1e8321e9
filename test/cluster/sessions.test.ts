import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, collect, connect, type MqttClient } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Guarantees 3 (persistent sessions across nodes) and 4 (client-id takeover).
const redis = await startRedis()
const nodes = await startCluster(redis.url, 3)
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B, C] = nodes

t.test('offline messages published on B reach the client when it reconnects to C, in order, once; no replay after a burst', async (t) => {
  const opts = { clientId: 'persist-1', clean: false }
  const first = await connect(A.port, opts)
  await first.subscribeAsync('ps/#', { qos: 1 })
  await first.endAsync()

  const pub = await connect(B.port, { clientId: 'persist-pub' })
  const N = 500
  for (let i = 0; i < N; i++) pub.publish('ps/x', String(i), { qos: 1 })
  await waitFor(() => (pub as unknown as { outgoing: object }).outgoing && Object.keys((pub as unknown as { outgoing: object }).outgoing).length === 0, 'all PUBACKs')

  let lastSeen = -1
  const second = await connectCollecting(C.port, opts, (got) => got.length >= N)
  t.equal(second.sessionPresent, true, 'CONNACK says session present')
  t.same(second.got.map(Number), Array.from({ length: N }, (_, i) => i), `all ${N} queued messages, in order, each once`)
  lastSeen = Number(second.got.at(-1))

  // Reconnect right after the last PUBACK: nothing may be replayed.
  const third = await connect(A.port, opts)
  const got3 = collect(third)
  await pub.publishAsync('ps/x', 'marker', { qos: 1 })
  await waitFor(() => got3.some((m) => m.payload === 'marker'), 'marker on third connection')
  t.same(got3.map((m) => m.payload), ['marker'], 'no message replayed after reconnecting right after the burst')
  t.equal(lastSeen, N - 1)
  await close(third, pub)
})

t.test('takeover: the same client id on B closes the A connection within 1 s and keeps the session', async (t) => {
  const opts = { clientId: 'takeover-1', clean: false }
  const onA = await connect(A.port, opts)
  await onA.subscribeAsync('to/#', { qos: 1 })
  const closedA = new Promise<number>((resolve) => onA.once('close', () => resolve(Date.now())))
  const started = Date.now()
  const onB = await connect(B.port, opts)
  const closedAt = await closedA
  t.ok(closedAt - started < 1000, `old connection closed after ${closedAt - started} ms`)
  const got = collect(onB)
  const pub = await connect(C.port, { clientId: 'takeover-pub' })
  await pub.publishAsync('to/a', 'hello', { qos: 1 })
  await waitFor(() => got.length >= 1, 'delivery to the new connection')
  t.same(got.map((m) => m.payload), ['hello'], 'the subscription carried over to B')
  await close(onB, pub)
})

t.test('simultaneous connects with one client id on two nodes: exactly one survives', async (t) => {
  for (let i = 0; i < 10; i++) {
    const id = `race-${i}`
    const results = await Promise.allSettled([connect(A.port, { clientId: id }), connect(B.port, { clientId: id })])
    const clients = results.filter((r): r is PromiseFulfilledResult<MqttClient> => r.status === 'fulfilled').map((r) => r.value)
    // Settle: the loser's close arrives via the takeover notice.
    await waitFor(() => clients.filter((c) => c.connected).length <= 1, 'loser closed', 3000)
    // And the winner must stay connected: ping it through a round trip.
    const alive = clients.filter((c) => c.connected)
    t.equal(alive.length, 1, `round ${i}: exactly one connection survives`)
    if (alive[0]) await alive[0].subscribeAsync(`race/${i}`, { qos: 1 })
    t.equal(alive.filter((c) => c.connected).length, 1, `round ${i}: the survivor still works`)
    await close(...clients)
  }
})

async function connectCollecting (port: number, opts: object, done: (got: string[]) => boolean): Promise<{ sessionPresent: boolean, got: string[] }> {
  // Attach the message handler before CONNACK: queued messages follow it at once.
  const mqtt = (await import('mqtt')).default
  const client = mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 4, reconnectPeriod: 0, ...opts })
  const got: string[] = []
  client.on('message', (_t, p) => got.push(p.toString()))
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    client.once('connect', (ack) => resolve(ack))
    client.once('error', reject)
  })
  await waitFor(() => done(got), 'queued messages', 15_000)
  await client.endAsync()
  return { sessionPresent: connack.sessionPresent, got }
}
