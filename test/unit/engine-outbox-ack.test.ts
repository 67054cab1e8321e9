import t from 'tap'
import { createLogger } from '../../broker/log.ts'
import { MemoryStore, ThingEngine, DEFAULT_ENGINE_OPTIONS, type OutMessage } from '../../engine/runtime/index.ts'
import { waitFor } from '../helpers/wait.ts'

// Routed batches are removed from the outbox in removal rounds
// (outboxAckDelayMs apart), not one store call per batch: below capacity most
// batches carry an update or two and a removal call each cost about as much
// as the commit (engine.ts scheduleAck). A stop still removes everything routed.

const store = new MemoryStore({ partitions: 1, backlogMax: 1000, historyMax: 10, historyMaxAgeMs: 0 })
const acks: number[] = []
const ackOutbox = store.ackOutbox.bind(store)
store.ackOutbox = async (p, token, n) => { acks.push(n); await ackOutbox(p, token, n) }

const sent: OutMessage[] = []
const engine = new ThingEngine(store, {
  log: createLogger('silent'),
  liveNodes: () => ['b1'],
  publish: async (m) => { sent.push(m) },
}, { ...DEFAULT_ENGINE_OPTIONS, brokerId: 'b1', partitions: 1, readBlockMs: 20, outboxAckDelayMs: 1500 })
await engine.start()
t.teardown(() => engine.stop())
await engine.importModule({ version: 1, templates: [{ id: 'T', properties: { n: { type: 'integer' } } }], things: [{ id: 'x', template: 'T' }], rules: [] })

const changed = (): number => sent.filter((m) => m.topic === 'things/x/changed/n').length
const write = (n: number): Promise<void> => engine.ingest({ kind: 'report', thingId: 'x', property: 'n' }, Buffer.from(String(n)), 'dev')

t.test('batches routed within the delay are removed by one call', async (t) => {
  const started = Date.now()
  for (let n = 1; n <= 3; n++) {
    await write(n)
    await waitFor(() => changed() === n, `batch ${n} routed`)
  }
  if (Date.now() - started < 1000) {
    t.same(acks, [], 'nothing removed right after routing')
    t.equal((await store.load(0)).outbox.length, 3, 'three batches in the outbox')
  }
  await waitFor(() => acks.reduce((a, b) => a + b, 0) === 3, 'the removal round', 5000)
  t.same(acks, [3], 'one call removed the three')
  t.equal((await store.load(0)).outbox.length, 0)
})

t.test('stopping removes what was routed without waiting for the round', async (t) => {
  await write(4)
  await waitFor(() => changed() === 4, 'batch 4 routed')
  const before = Date.now()
  await engine.stop()
  t.ok(Date.now() - before < 1500, 'stop did not wait for the removal round')
  t.same(acks, [3, 1])
  t.equal((await store.load(0)).outbox.length, 0, 'outbox empty after the stop')
})
