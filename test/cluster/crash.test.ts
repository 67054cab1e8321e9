import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Guarantee 5: a node killed with SIGKILL. Its clients' wills are published by
// a survivor within 5 s, exactly once, never for a client already back on
// another node; its persistent-session clients lose nothing acknowledged.
const redis = await startRedis()
const nodes = await startCluster(redis.url, 3)
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B, C] = nodes

t.test('SIGKILL of a node: wills once within 5 s, not for reconnected clients; persistent sessions keep every acked message', async (t) => {
  const watchB = await connect(B.port, { clientId: 'watch-b' })
  const watchC = await connect(C.port, { clientId: 'watch-c' })
  const seenB = collect(watchB)
  const seenC = collect(watchC)
  await watchB.subscribeAsync('status/#', { qos: 1 })
  await watchC.subscribeAsync('status/#', { qos: 1 })

  const will = (id: string) => ({ topic: `status/${id}`, payload: Buffer.from('offline'), qos: 1 as const, retain: true })
  const gone = await connect(A.port, { clientId: 'dev-gone', will: will('dev-gone') })
  const back = await connect(A.port, { clientId: 'dev-back', will: will('dev-back') })
  await back.publishAsync('status/dev-back', 'online', { qos: 1, retain: true })
  const persistent = await connect(A.port, { clientId: 'dev-persist', clean: false })
  await persistent.subscribeAsync('cmd/dev-persist', { qos: 1 })
  for (const c of [gone, back, persistent]) c.on('close', () => {})

  const killedAt = Date.now()
  await A.kill('SIGKILL')

  // dev-back reconnects to B at once, before A is declared dead.
  const back2 = await connect(B.port, { clientId: 'dev-back', will: will('dev-back') })
  await back2.publishAsync('status/dev-back', 'online', { qos: 1, retain: true })

  // Messages for the persistent client, acknowledged by C while it is offline.
  const pub = await connect(C.port, { clientId: 'cmd-pub' })
  for (let i = 0; i < 100; i++) await pub.publishAsync('cmd/dev-persist', String(i), { qos: 1 })

  await waitFor(() => seenB.some((m) => m.topic === 'status/dev-gone') && seenC.some((m) => m.topic === 'status/dev-gone'), 'will of dev-gone', 5000)
  const willAfter = Date.now() - killedAt
  t.ok(willAfter < 5000, `will published ${willAfter} ms after the kill`)

  // Wait past another reaping round, then count.
  await waitFor(async () => {
    const { body } = await B.health()
    return (body.members as unknown[]).length === 2
  }, 'A gone from membership')
  await pub.publishAsync('status/marker', 'm', { qos: 1 })
  await waitFor(() => seenB.some((m) => m.topic === 'status/marker') && seenC.some((m) => m.topic === 'status/marker'), 'marker')
  for (const [name, seen] of [['B', seenB], ['C', seenC]] as const) {
    t.equal(seen.filter((m) => m.topic === 'status/dev-gone' && m.payload === 'offline').length, 1, `watcher on ${name} got dev-gone's will exactly once`)
    t.equal(seen.filter((m) => m.topic === 'status/dev-back' && m.payload === 'offline').length, 0, `watcher on ${name} never got the stale will of dev-back`)
  }

  const check = await connect(C.port, { clientId: 'retained-check' })
  const retained = collect(check)
  await check.subscribeAsync('status/dev-back', { qos: 1 })
  await waitFor(() => retained.length >= 1, 'retained status')
  t.equal(retained[0].payload, 'online', 'dev-back stays online in the retained status')

  // The persistent client comes back on B: all 100 acknowledged messages, in order.
  const mqtt = (await import('mqtt')).default
  const again = mqtt.connect({ host: '127.0.0.1', port: B.port, clientId: 'dev-persist', clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  const got: string[] = []
  again.on('message', (_t, p) => got.push(p.toString()))
  await waitFor(() => got.length >= 100, '100 queued commands', 10_000)
  t.same(got, Array.from({ length: 100 }, (_, i) => String(i)), 'every acknowledged message, in order, once')
  await close(watchB, watchC, back2, pub, check, again)
})
