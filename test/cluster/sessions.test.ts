import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, startNodeProcess, stopAll } from '../helpers/node.ts'
import { close, collect, connect, connectAndCollect, type MqttClient } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'

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

t.test('a persistent client whose node was SIGKILLed is taken over at once, not after takeoverWaitMs', async (t) => {
  // Own cluster name, so the three nodes above do not reap the victim, and a
  // long dead-after: the victim stays a member throughout, which is the case
  // where the new node used to wait for a release that never comes.
  const args = ['--cluster', 'deadholder', '--dead-after-ms', '60000', '--takeover-wait-ms', '30000']
  const victim = await startNodeProcess({ redis: redis.url, nodeId: 'victim', args })
  const heir = await startNodeProcess({ redis: redis.url, nodeId: 'heir', args })
  t.teardown(() => stopAll([victim, heir]))
  await waitFor(async () => ((await heir.health()).body.members as unknown[]).length === 2, 'heir sees the victim')
  const opts = { clientId: 'dead-holder', clean: false }
  const first = await connect(victim.port, opts)
  first.on('error', () => {})
  await first.subscribeAsync('dh/#', { qos: 1 })
  await victim.kill('SIGKILL')
  const pub = await connect(heir.port, { clientId: 'dead-holder-pub' })
  await pub.publishAsync('dh/x', 'queued', { qos: 1 })
  // connectTimeout 10 s: far below the 30 s the heir would wait for a release.
  const { client: second, got } = await connectAndCollect(heir.port, { ...opts, connectTimeout: 10_000 })
  t.equal(second.connected, true, 'reconnected to the surviving node')
  t.match(heir.log(), /"event":"session.takeover_from_dead","clientId":"dead-holder"/, 'the heir saw the holder stop beating')
  await waitFor(() => got.some((m) => m.payload === 'queued'), 'queued message delivered')
  t.pass('the message queued while the holder was dead is delivered')
  first.end(true)
  await close(second, pub)
})

t.test('a client that hangs up during CONNECT leaves no claim behind (chaos R12: 5 of 2,085 churned clients kept an owners entry)', async (t) => {
  const rc = redis.client()
  const ids = Array.from({ length: 60 }, (_, i) => `hangup-${i}`)
  // Redis holds write scripts for a moment, so every claim is in flight when its socket closes
  // (what a loaded node does by itself: R12 ran at load 8).
  const epochKey = 'tm:{thingmesh}:epoch'
  const epochBefore = Number(await rc.get(epochKey))
  await rc.client('PAUSE', '800', 'WRITE')
  await Promise.all(ids.map(async (id, i) => {
    const raw = await rawConnect(nodes[i % 3].port)
    raw.send(connectPacket(id, { clean: i % 2 === 0 }))
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (i % 3 === 0) raw.socket.end(); else raw.socket.destroy()
    await raw.closed
  }))
  await waitFor(async () => Number(await rc.get(epochKey)) >= epochBefore + ids.length, 'every claim executed once Redis resumed', 10_000)
  // Owners entries of clean sessions go with the connection; persistent ones stay, marked released.
  await waitFor(async () => {
    const owners = await rc.hmget('tm:{thingmesh}:owners', ...ids)
    return owners.every((o, i) => o === null || (i % 2 === 1 && o.split('|')[2] === 'released'))
  }, 'no live claim left for clients that hung up', 10_000).catch(() => {})
  const owners = await rc.hmget('tm:{thingmesh}:owners', ...ids)
  const leftClean = ids.filter((_, i) => i % 2 === 0 && owners[i] !== null)
  const heldPersistent = ids.filter((_, i) => i % 2 === 1 && owners[i] !== null && owners[i]!.split('|')[2] !== 'released')
  t.same(leftClean, [], 'no owners entry for clean clients that hung up')
  t.same(heldPersistent, [], 'persistent clients that hung up are released')
  rc.disconnect()
})
