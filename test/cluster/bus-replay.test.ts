import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Redis pub/sub is at-most-once: what is published on a node's bus channel
// while its pub/sub link is down never reaches it. QoS 1/2 batches also go to
// the node's replay log (broker/cluster/bus-log.ts), read when the link
// comes back, so a clean subscriber loses none of the acknowledged messages
// published across the cut.
const redis = await startRedis()
// No per-client publish rate cap: the publisher runs as fast as PUBACKs come.
// Without the direct links: over a link, QoS 1 is acknowledged by the
// receiver and needs no log (QoS 1 with --redis-wait-replicas, QoS 2, and
// anything while a link is down take this path).
const nodes = await startCluster(redis.url, 2, ['--publish-rate-per-client', '0', '--cluster-links', 'false'])
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B] = nodes
const rc = redis.client()
let logKey: string | undefined

const metric = async (name: string): Promise<number> => Number(new RegExp(`^${name} (\\d+)`, 'm').exec(await B.metrics())?.[1] ?? 0)

/** Kills node B's pub/sub connection (by its client name) and waits for B to count the reconnect. */
async function cutBSubscriber (): Promise<void> {
  const before = await metric('thingmesh_pubsub_reconnects_total')
  const list = await rc.client('LIST') as string
  const line = list.split('\n').find((l) => l.includes(`name=thingmesh:${B.nodeId}:sub `))
  if (!line) throw new Error(`no pub/sub connection named thingmesh:${B.nodeId}:sub in CLIENT LIST`)
  await rc.client('KILL', 'ID', /\bid=(\d+)/.exec(line)![1])
  await waitFor(async () => await metric('thingmesh_pubsub_reconnects_total') > before, 'node B reconnected its pub/sub link', 10_000)
}

t.test('a clean subscriber gets every acknowledged QoS1 message published while its node\'s pub/sub link was cut', async (t) => {
  const sub = await connect(B.port, { clientId: 'replay-sub', clean: true })
  const got = new Set<string>()
  let dup = 0
  sub.on('message', (_topic, p) => { const k = p.toString(); if (got.has(k)) dup++; got.add(k) })
  await sub.subscribeAsync('replay/#', { qos: 1 })
  const pub = await connect(A.port, { clientId: 'replay-pub' })
  // A disconnected publisher (reconnectPeriod 0) would wait for its PUBACKs forever: fail instead.
  const dropped = new Promise<never>((_resolve, reject) => pub.once('close', () => reject(new Error('the publisher was disconnected'))))
  dropped.catch(() => {})
  const N = 3000
  const acked: string[] = []
  let cuts = 0
  const publishing = (async () => {
    for (let i = 0; i < N; i += 20) {
      const batch = Array.from({ length: 20 }, (_, k) => String(i + k))
      await Promise.race([Promise.all(batch.map((m) => pub.publishAsync('replay/x', m, { qos: 1 }))), dropped])
      acked.push(...batch)
    }
  })()
  // Three cuts while the stream runs: each leaves a window of at least one ioredis reconnect delay.
  for (const at of [500, 1200, 1900]) {
    await waitFor(() => acked.length >= at, `${at} messages acknowledged`, 30_000)
    await cutBSubscriber()
    cuts++
  }
  await publishing
  t.equal(cuts, 3)
  // Read before it could expire (2 × dead-after + 1 s after the last write).
  logKey = (await rc.keys('*buslog:*')).find((k) => k.includes(`buslog:${B.nodeId}~`))
  await waitFor(() => got.size >= N, `all ${N} acknowledged messages at the subscriber (has ${got.size})`, 15_000).catch(() => {})
  const lost = acked.filter((m) => !got.has(m))
  t.same(lost.slice(0, 10), [], `0 of ${acked.length} acknowledged messages lost (lost ${lost.length})`)
  t.equal(dup, 0, 'no message delivered twice')
  t.ok(await metric('thingmesh_bus_replayed_total') > 0, 'the replay log delivered what the cuts missed')
  t.match(B.log(), /"event":"bus.replayed"/, 'the replay is logged')
  await close(sub, pub)
})

t.test('the receiver trims its replay log to what it delivered', async (t) => {
  t.ok(logKey, 'node B has a replay log')
  t.ok(await rc.pttl(logKey!) > 0, 'the log expires if its reader disappears')
  await waitFor(async () => await rc.xlen(logKey!) <= 1, 'the log trimmed to at most the last delivered entry', 10_000)
})
