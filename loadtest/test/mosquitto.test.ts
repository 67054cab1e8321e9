// The tool against a real mosquitto: its counts must match what an
// independent client saw and what was injected.

import t from 'tap'
import mqtt from 'mqtt'
import { encodePayload, nowUs } from '../payload.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { observe } from './helpers/observer.ts'
import { run } from './helpers/run.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

t.test('pubsub: counts match an independent observer, nothing lost', async (t) => {
  const obs = await observe(broker.url, 'lt-a/#')
  t.teardown(() => obs.close())
  const r = await run([
    'pubsub', '--url', broker.url, '--clients', '3', '--subscribers', '2', '--count', '3000',
    '--qos', '1', '--topic', 'lt-a/{clientId}', '--client-prefix', 'ta', '--payload-size', '128',
  ])
  await obs.waitFor(3000)
  t.equal(r.messages.sent, 3000)
  t.equal(r.messages.acked, 3000)
  t.equal(obs.total(), 3000, 'observer saw exactly what the tool sent')
  t.same([...obs.counts.keys()].sort(), ['ta-p0', 'ta-p1', 'ta-p2'])
  t.equal(r.messages.received, 6000, 'each of 2 subscribers got every message')
  t.equal(r.loss.lost, 0)
  t.equal(r.loss.duplicates, 0)
  t.equal(r.loss.unique, 6000)
  t.equal(r.latency.count, 6000)
  t.equal(r.connections.connected, 5)
  t.ok(r.latency.p50Ms > 0 && r.latency.p50Ms <= r.latency.p99Ms && r.latency.p99Ms <= r.latency.maxMs)
})

t.test('injected receive-side drops show up as lost', async (t) => {
  const r = await run([
    'pubsub', '--url', broker.url, '--clients', '2', '--count', '700', '--qos', '1',
    '--inject-drop-every', '7', '--topic', 'lt-b/{clientId}', '--drain', '10s',
  ])
  t.equal(r.messages.sent, 700)
  t.equal(r.loss.injectedDrops, 100)
  t.equal(r.loss.lost, 100)
  t.equal(r.messages.received, 600)
  t.equal(r.loss.duplicates, 0)
})

t.test('pub: the observer receives exactly --count', async (t) => {
  const obs = await observe(broker.url, 'lt-c/#')
  t.teardown(() => obs.close())
  const r = await run(['pub', '--url', broker.url, '--clients', '4', '--count', '1001', '--qos', '1', '--topic', 'lt-c/{n}'])
  await obs.waitFor(1001)
  t.equal(r.messages.sent, 1001)
  t.equal(obs.total(), 1001)
  t.equal(obs.counts.size, 4, 'spread over the 4 publishers (unpaced: not evenly)')
  t.equal(r.loss.checked, false)
})

t.test('sub: gaps, duplicates and reordering from an outside publisher', async (t) => {
  const ext = await mqtt.connectAsync(broker.url, { clientId: 'ext-pub', protocolVersion: 4 })
  t.teardown(() => ext.endAsync(true))
  const seqs = [1, 2, 3, 5, 4, 6, 6, 9, 10] // 7, 8 lost; 4 late; 6 twice
  const r = await run(['sub', '--url', broker.url, '--clients', '1', '--count', String(seqs.length), '--topic', 'lt-d/{clientId}', '--sub-topic', 'lt-d/#', '--qos', '1', '--duration', '60'], {
    onEvent: (e) => {
      if (e.label !== 'receiving') return
      for (const s of seqs) ext.publish('lt-d/x', encodePayload('ext', s, nowUs()), { qos: 1 })
    },
  })
  t.equal(r.messages.received, 9)
  t.equal(r.loss.lost, 2)
  t.equal(r.loss.duplicates, 1)
  t.equal(r.loss.outOfOrder, 1)
  t.ok(r.elapsedMs < 30_000, 'stopped at --count, not at --duration')
})

t.test('latency: fixed rate, two URLs, two workers', async (t) => {
  const alt = broker.url.replace('mqtt://', 'tcp://')
  const r = await run([
    'latency', '--url', `${broker.url},${alt}`, '--clients', '4', '--subscribers', '2',
    '--rate', '200', '--duration', '2', '--workers', '2', '--qos', '1', '--topic', 'lt-e/{clientId}',
  ])
  // Never above the rate; the floor is loose because the test machine may be busy.
  t.ok(r.messages.sent >= 250 && r.messages.sent <= 410, `about 400 sent at 200/s, got ${r.messages.sent}`)
  t.equal(r.messages.received, r.messages.sent * 2)
  t.equal(r.loss.lost, 0)
  t.equal(r.latency.count, r.messages.sent * 2)
  t.equal(r.connections.connected, 6)
  t.ok(r.timeline.length >= 2, 'one point a second')
  t.ok(r.latency.p999Ms >= r.latency.p99Ms)
})

t.test('conn: holds connections and measures broker memory via --pid', async (t) => {
  const r = await run(['conn', '--url', broker.url, '--clients', '100', '--duration', '1', '--ramp', '1000', '--pid', String(broker.pid())])
  t.equal(r.connections.attempted, 100)
  t.equal(r.connections.connected, 100)
  t.same(r.connections.failures, {})
  t.ok(r.memory !== null && r.memory.afterBytes > 0)
  t.equal(r.connections.connectTime.count, 100)
  t.ok(r.timeline.some((p) => p.connected === 100))
})
