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
const redis = await startRedis()
const nodes = await startCluster(redis.url, 3, ['--allow-anonymous', 'true'])
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B, C] = nodes

t.test('drain a node under a QoS1 stream: 0 lost, clients moved, no wills, exit 0', async (t) => {
  const servers = nodes.map((n) => ({ host: '127.0.0.1', port: n.port }))
  const watcher = await connect(C.port, { clientId: 'drain-watch' })
  const wills = collect(watcher)
  await watcher.subscribeAsync('drain/will/#', { qos: 1 })

  // Subscriber and one publisher start on A (the node to drain) and fail over by themselves.
  const sub = mqtt.connect({ servers, clientId: 'drain-sub', clean: false, protocolVersion: 4, reconnectPeriod: 100, will: { topic: 'drain/will/sub', payload: Buffer.from('gone'), qos: 1, retain: false } })
  const received = new Set<number>()
  sub.on('message', (_t, p) => received.add(Number(p.toString())))
  await new Promise((r) => sub.once('connect', r))
  await sub.subscribeAsync('drain/stream', { qos: 1 })
  const pubs = [
    mqtt.connect({ servers, clientId: 'drain-pub-a', protocolVersion: 4, reconnectPeriod: 100 }),
    mqtt.connect({ servers: [servers[1], servers[2]], clientId: 'drain-pub-b', protocolVersion: 4, reconnectPeriod: 100 }),
  ]
  await Promise.all(pubs.map((p) => new Promise((r) => p.once('connect', r))))
  const acked = new Set<number>()
  let seq = 0
  let running = true
  const streams = pubs.map(async (p) => {
    while (running && seq < 5000) {
      const n = seq++
      p.publish('drain/stream', String(n), { qos: 1 }, (err) => { if (!err) acked.add(n) })
      await new Promise((r) => setTimeout(r, 2))
    }
  })

  await waitFor(() => acked.size > 200, 'stream under way')
  const drain = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'drain', '--node-id', A.nodeId, '--redis', redis.url, '--spread-ms', '500', '--timeout-ms', '20000'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  drain.stdout!.on('data', (d) => { out += d })
  const drainCode = await new Promise<number | null>((resolve) => drain.once('exit', resolve))
  t.equal(drainCode, 0, `thingmesh drain exited 0: ${out.trim()}`)
  t.equal(await A.exited, 0, 'the drained node exited 0')

  await waitFor(() => acked.size > 400 + [...acked].filter((n) => n > 0).length * 0 && sub.connected, 'subscriber reconnected elsewhere', 15_000)
  const afterDrain = acked.size
  await waitFor(() => acked.size > afterDrain + 200, 'stream continues after the drain', 15_000)
  running = false
  await Promise.all(streams)
  await waitFor(() => [...acked].every((n) => received.has(n)), 'every acknowledged message received', 20_000)
  const lost = [...acked].filter((n) => !received.has(n))
  t.equal(lost.length, 0, `0 of ${acked.size} acknowledged messages lost`)
  t.match(A.log(), /"event":"node.drained"/, 'the node logged its drain')
  const marker = await connect(B.port, { clientId: 'drain-marker' })
  await marker.publishAsync('drain/will/marker', 'm', { qos: 1 })
  await waitFor(() => wills.some((m) => m.topic === 'drain/will/marker'), 'marker')
  t.same(wills.filter((m) => m.topic === 'drain/will/sub'), [], 'no will published for a client that only moved')
  sub.end(true)
  for (const p of pubs) p.end(true)
  await close(watcher, marker)
})
