import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Issue 7: `thingmesh drain` under load. The drained node's clients move to
// the others; no acknowledged QoS1 message is lost; no will is published for
// clients that only moved; the node exits 0.
const BIN = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))
// Bounds for progress, not criteria: on the shared 2-core box at load average
// 40 the stream took over 10 s to reach 200 PUBACKs. The reconnect's connect
// timeout is one of them: a first CONNECT that never completes (the CONNACK
// stall of issue 7) still ends in a second attempt and a will, which fails
// the test, only later.
const LIVENESS_MS = 60_000
t.setTimeout(240_000)
const redis = await startRedis()
// --dead-after-ms 15000: at load average 35-50 the drain found "2 node(s)
// listening": a peer had missed its heartbeats for 3 s and was declared dead
// (and fenced itself). This test is about a planned departure; failure
// detection under CPU starvation is membership's and crash.test.ts'.
const nodes = await startCluster(redis.url, 3, ['--allow-anonymous', 'true', '--dead-after-ms', '15000'])
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B, C] = nodes

t.test('drain a node under a QoS1 stream: 0 lost, clients moved, no wills, exit 0', async (t) => {
  t.teardown(() => {
    if (t.passing()) return
    // What each node logged about the moved client, for the failure report.
    for (const n of nodes) t.comment(`${n.nodeId}:\n` + n.log().split('\n').filter((l) => l.includes('drain-sub') || l.includes('node.drain') || /node_dead|exit_fenced|cluster.fenced/.test(l)).join('\n'))
  })
  const watcher = await connect(C.port, { clientId: 'drain-watch' })
  const wills = collect(watcher)
  await watcher.subscribeAsync('drain/will/#', { qos: 1 })

  // A persistent subscriber on A (the node to drain) moves to C when A lets it go.
  const received = new Set<number>()
  const opts = { clientId: 'drain-sub', clean: false, protocolVersion: 4 as const, reconnectPeriod: 0, will: { topic: 'drain/will/sub', payload: Buffer.from('gone'), qos: 1 as const, retain: false } }
  const onA = mqtt.connect({ host: '127.0.0.1', port: A.port, ...opts })
  onA.on('message', (_t, p) => received.add(Number(p.toString())))
  onA.on('error', () => {})
  await new Promise((r) => onA.once('connect', r))
  await onA.subscribeAsync('drain/stream', { qos: 1 })
  const closed = new Promise<void>((resolve) => onA.once('close', () => resolve()))

  const pub = await connect(B.port, { clientId: 'drain-pub' })
  const acked = new Set<number>()
  let running = true
  const stream = (async () => {
    for (let n = 0; running && n < 20_000; n++) {
      pub.publish('drain/stream', String(n), { qos: 1 }, (err) => { if (!err) acked.add(n) })
      await new Promise((r) => setTimeout(r, 2))
    }
  })()

  await waitFor(() => acked.size > 200, 'stream under way', LIVENESS_MS)
  const drain = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'drain', '--node-id', A.nodeId, '--redis', redis.url, '--spread-ms', '500', '--timeout-ms', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  drain.stdout!.on('data', (d) => { out += d })
  const drainCode = await new Promise<number | null>((resolve) => drain.once('exit', resolve))
  t.equal(drainCode, 0, `thingmesh drain exited 0: ${out.trim()}`)
  t.equal(await A.exited, 0, 'the drained node exited 0')
  await closed
  // The client comes back on C, as a device behind a load balancer would.
  const onC = mqtt.connect({ host: '127.0.0.1', port: C.port, ...opts, connectTimeout: LIVENESS_MS, reconnectPeriod: 200 })
  onC.on('message', (_t, p) => received.add(Number(p.toString())))
  onC.on('error', () => {})
  const reconnectStart = Date.now()
  await new Promise((resolve) => onC.once('connect', resolve))
  t.comment(`reconnected to ${C.nodeId} in ${Date.now() - reconnectStart} ms`)
  const afterDrain = acked.size
  await waitFor(() => acked.size > afterDrain + 200, 'stream continues after the drain', LIVENESS_MS)
  running = false
  await stream
  await waitFor(() => [...acked].every((n) => received.has(n)), 'every acknowledged message received', LIVENESS_MS)
  t.equal([...acked].filter((n) => !received.has(n)).length, 0, `0 of ${acked.size} acknowledged messages lost`)
  t.match(A.log(), /"event":"node.drained"/, 'the node logged its drain')
  await pub.publishAsync('drain/will/marker', 'm', { qos: 1 })
  await waitFor(() => wills.some((m) => m.topic === 'drain/will/marker'), 'marker', LIVENESS_MS)
  t.same(wills.filter((m) => m.topic === 'drain/will/sub'), [], 'no will published for a client that only moved')
  onC.end(true)
  await close(watcher, pub)
})
