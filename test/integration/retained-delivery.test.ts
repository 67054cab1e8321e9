import t from 'tap'
import { readFileSync } from 'node:fs'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'
import { adminClient, ADMIN_ARGS } from '../helpers/admin.ts'
import { waitFor } from '../helpers/wait.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { encodeFrame } from '../../broker/cluster/codec.ts'

// A new subscription's retained messages, sent by broker/mqtt/retained-delivery.ts
// (many per event-loop turn) instead of aedes (one per turn): all of them, once,
// with the retain flag, at the lower of stored and granted QoS, never one the
// ACL denies, and never more than the socket takes for a reader that stops.

t.setTimeout(120_000)

const redis = await startRedis()
const node = await startNodeProcess({ redis: redis.url, anonymous: false, args: [...ADMIN_ARGS, '--publish-rate-per-client', '0', '--max-client-buffer-bytes', '262144'] })
const admin = await adminClient(node.port)
for (const [username, role] of [['appA', 'app'], ['devA', 'device']]) await admin.call('users/put', { username, role, password: `${username}-password` })
const db = redis.client()
t.teardown(async () => { await admin.close(); await node.kill(); await redis.stop() })

const login = (clientId: string, username: string): ReturnType<typeof connect> => connect(node.port, { clientId, username, password: `${username}-password` })
const keys = createKeys('thingmesh')

/** Stores retained messages straight into Redis in the node's format (10,000 MQTT publishes would be most of the test). */
async function storeDirect (topics: string[], payload: Buffer, qos: 0 | 1 | 2): Promise<void> {
  for (let start = 0; start < topics.length; start += 5000) {
    const h: Array<string | Buffer> = []
    const z: Array<string | number> = []
    for (const topic of topics.slice(start, start + 5000)) {
      h.push(topic, encodeFrame('', { topic, payload, qos, retain: true, dup: false, brokerId: '', brokerCounter: 0 }))
      z.push(0, topic)
    }
    await db.pipeline().hset(keys.retained, ...h).zadd(keys.retainedIndex, ...z).exec()
  }
}

const slowCounter = async (action: string): Promise<number> =>
  Number(new RegExp(`thingmesh_slow_consumer_total\\{action="${action}"\\} (\\d+)`).exec(await node.metrics())?.[1] ?? 0)

t.test('10,000 retained messages to a new # subscriber: each once, retain flag set, QoS1 downgraded to the granted 0', async (t) => {
  const N = 10_000
  await storeDirect(Array.from({ length: N }, (_, i) => `bulk/${i % 100}/${i}`), Buffer.from('retained'), 1)
  const sub = await login('rd-all', 'appA')
  const got = collect(sub)
  await sub.subscribeAsync('#', { qos: 0 })
  await waitFor(() => got.length >= N, `all ${N} retained messages (have ${got.length})`, 60_000)
  const bulk = got.filter((m) => m.topic.startsWith('bulk/'))
  t.equal(bulk.length, N, 'every stored message arrived')
  t.equal(new Set(bulk.map((m) => m.topic)).size, N, 'each topic once')
  t.ok(bulk.every((m) => m.retain), 'retain flag set on each [MQTT-3.3.1-8]')
  t.ok(bulk.every((m) => m.qos === 0), 'each downgraded to the granted QoS 0 [MQTT-3.8.4-6]')
  t.ok(bulk.every((m) => m.payload === 'retained'), 'payloads intact')
  await close(sub)
})

t.test('filters with wildcards inside or in front: the index range or one pass over the index, only the matches', async (t) => {
  // bulk/{i % 100}/{i} from the test above.
  const sub = await login('rd-wild', 'appA')
  const got = collect(sub)
  await sub.subscribeAsync('+/5/+', { qos: 0 })
  await waitFor(() => got.length >= 100, `the 100 retained messages under +/5/+ (have ${got.length})`)
  t.same(new Set(got.map((m) => m.topic)), new Set(Array.from({ length: 100 }, (_, k) => `bulk/5/${5 + 100 * k}`)), 'leading wildcard: exactly the matches')
  await sub.subscribeAsync('bulk/+/7', { qos: 0 })
  await waitFor(() => got.length >= 101, 'the one retained message under bulk/+/7')
  t.equal(got[100].topic, 'bulk/7/7', 'wildcard inside: the match')
  // Several leading-wildcard filters: one pass over the index for all of them.
  await sub.subscribeAsync(['+/1/1', '+/2/2', '+/3/3', '+/4/4', '+/5/5'], { qos: 0 })
  await waitFor(() => got.length >= 106, 'the five matches of five leading-wildcard filters')
  t.same(got.slice(101).map((m) => m.topic).sort(), ['bulk/1/1', 'bulk/2/2', 'bulk/3/3', 'bulk/4/4', 'bulk/5/5'])
  // RegExp and glob characters in a filter are literal.
  await storeDirect(['glob/[x]*?\\/1', 'glob/x/1', 'glob/[x]zz\\/1'], Buffer.from('g'), 0)
  await sub.subscribeAsync('+/[x]*?\\/+', { qos: 0 })
  await waitFor(() => got.length >= 107, 'the match of a filter with glob characters')
  t.equal(got[106].topic, 'glob/[x]*?\\/1', 'only the literal match')
  await close(sub)
  t.equal(got.length, 107, 'nothing else')
})

t.test('each message at the lower of its stored QoS and the granted one; live messages keep no retain flag', async (t) => {
  const pub = await login('rd-pub', 'appA')
  await pub.publishAsync('q/0', 'zero', { qos: 0, retain: true })
  await pub.publishAsync('q/1', 'one', { qos: 1, retain: true })
  await pub.publishAsync('q/2', 'two', { qos: 2, retain: true })
  await waitFor(async () => await db.hexists(keys.retained, 'q/0') === 1, 'the QoS0 retained message stored')
  const sub = await login('rd-qos', 'appA')
  const got = collect(sub)
  await sub.subscribeAsync('q/#', { qos: 1 })
  await waitFor(() => got.length >= 3, 'the three retained messages')
  const byTopic = Object.fromEntries(got.map((m) => [m.topic, m]))
  t.match(byTopic, { 'q/0': { qos: 0, retain: true, payload: 'zero' }, 'q/1': { qos: 1, retain: true, payload: 'one' }, 'q/2': { qos: 1, retain: true, payload: 'two' } })
  // Exact filter (the HMGET path), granted QoS 2: sent at the stored QoS 2, and acknowledged by the client.
  await sub.subscribeAsync('q/2', { qos: 2 })
  await waitFor(() => got.length >= 4, 'the exact topic\'s retained message')
  t.match(got[3], { topic: 'q/2', qos: 2, retain: true })
  await pub.publishAsync('q/1', 'live', { qos: 1 })
  await waitFor(() => got.some((m) => m.payload === 'live'), 'a live message')
  t.equal(got.find((m) => m.payload === 'live')!.retain, false, 'a live message to an existing subscription has no retain flag')
  await close(pub, sub)
})

t.test('the ACL is applied to each retained message', async (t) => {
  const pub = await login('rd-acl-pub', 'appA')
  // things/devA is matched by things/devA/# but is outside the device's subtree (mayReceive).
  await pub.publishAsync('things/devA', 'denied', { qos: 1, retain: true })
  await pub.publishAsync('things/devA/telemetry', 'allowed', { qos: 1, retain: true })
  await pub.publishAsync('things/devB/telemetry', 'other', { qos: 1, retain: true })
  const dev = await login('devA', 'devA')
  const got = collect(dev)
  await dev.subscribeAsync('things/devA/#', { qos: 1 })
  await waitFor(() => got.length >= 1, 'the allowed retained message')
  // The parent topic is read and sent before the range under it, so a denied
  // message that slipped through would have arrived first.
  t.same(got.map((m) => m.topic), ['things/devA/telemetry'], 'only the allowed topic')
  await close(pub, dev)
})

t.test('a reader that stops during a large retained burst: the node waits for its socket, drops nothing, holds little', async (t) => {
  const N = 30_000
  await storeDirect(Array.from({ length: N }, (_, i) => `big/${i}`), Buffer.alloc(1024, 'b'), 0)
  const raw = await rawConnect(node.port)
  raw.send(connectPacket('rd-slow', { username: 'appA', password: Buffer.from('appA-password') }))
  t.equal((await raw.next('connack')).returnCode, 0)
  const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${node.proc.pid}/status`, 'utf8'))![1]) * 1024
  const rssBefore = rss()
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'big/#', qos: 0 }] })
  await raw.next('suback')
  raw.socket.pause()
  // Longer than the slow-consumer grace (1 s): a node that kept writing
  // would by now hold most of the 30 MB and drop QoS0 messages over the cap.
  await new Promise((resolve) => setTimeout(resolve, 2500))
  const grown = rss() - rssBefore
  // Measured: 12 MiB (two Redis batches of ~1 MiB, the socket buffer, garbage
  // not yet collected); 54 MiB when aedes sent them (it wrote on regardless).
  t.ok(grown < 24 * 1024 * 1024, `node RSS grew ${(grown / 1048576).toFixed(1)} MiB with 30 MiB unread`)
  raw.socket.resume()
  await waitFor(() => raw.packets.filter((p) => p.cmd === 'publish').length >= N, 'every retained message once the reader resumes', 60_000)
  const topics = new Set(raw.packets.filter((p) => p.cmd === 'publish').map((p) => p.topic))
  t.equal(topics.size, N, 'each of them once')
  t.equal(await slowCounter('qos0_dropped'), 0, 'none dropped as a slow consumer')
  t.notOk(raw.socket.destroyed, 'still connected')
  raw.socket.destroy()
})
