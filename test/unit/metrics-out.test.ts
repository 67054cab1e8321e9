import t from 'tap'
import { createMetrics } from '../../broker/metrics.ts'

/** Value of an unlabelled sample in the Prometheus text exposition. */
function sample (text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  if (line === undefined) throw new Error(`no sample ${name}`)
  return Number(line.slice(name.length + 1))
}

t.test('deliveries counted in plain numbers are exact at every scrape', async (t) => {
  const m = createMetrics()
  for (let i = 0; i < 1000; i++) m.countOut(i % 7)
  let text = await m.registry.metrics()
  t.equal(sample(text, 'thingmesh_messages_out_total'), 1000)
  let bytes = 0
  for (let i = 0; i < 1000; i++) bytes += i % 7
  t.equal(sample(text, 'thingmesh_bytes_out_total'), bytes)
  // A second scrape with nothing new does not count the batch twice.
  text = await m.registry.metrics()
  t.equal(sample(text, 'thingmesh_messages_out_total'), 1000)
  t.equal(sample(text, 'thingmesh_bytes_out_total'), bytes)
  m.countOut(10)
  m.countOut(5)
  text = await m.registry.metrics()
  t.equal(sample(text, 'thingmesh_messages_out_total'), 1002)
  t.equal(sample(text, 'thingmesh_bytes_out_total'), bytes + 15)
})

t.test('a direct get() (the LoadSampler reads the counter so) sees pending deliveries', async (t) => {
  const m = createMetrics()
  m.countOut(3)
  m.countOut(4)
  t.same((await m.messagesOut.get()).values.map((v) => v.value), [2])
  t.same((await m.bytesOut.get()).values.map((v) => v.value), [7])
})

t.test('publishes received are counted by QoS, exact at every read', async (t) => {
  const m = createMetrics()
  for (let i = 0; i < 10; i++) m.countIn(i % 3, 2)
  const byQos = async (): Promise<Record<string, number>> => Object.fromEntries((await m.messagesIn.get()).values.map((v) => [String(v.labels.qos), v.value]))
  t.same(await byQos(), { 0: 4, 1: 3, 2: 3 })
  t.same((await m.bytesIn.get()).values.map((v) => v.value), [20])
  m.countIn(1, 5)
  const text = await m.registry.metrics()
  t.match(text, /thingmesh_messages_in_total\{qos="1"\} 4\n/)
  t.equal(sample(text, 'thingmesh_bytes_in_total'), 25)
  t.same(await byQos(), { 0: 4, 1: 4, 2: 3 })
})
