import t from 'tap'
import { createLogger } from '../../broker/log.ts'
import { MemoryStore, ThingEngine, DEFAULT_ENGINE_OPTIONS, type OutMessage } from '../../engine/runtime/index.ts'
import { waitFor } from '../helpers/wait.ts'

// The owner publishes a partition's committed batches in commit order, hands
// a batch to the broker without waiting for the previous one to be routed,
// and removes batches from the outbox only once they and every earlier one
// were routed (engine.ts publishCommitted / ackPublished).

const store = new MemoryStore({ partitions: 1, backlogMax: 1000, historyMax: 10, historyMaxAgeMs: 0 })
const acks: number[] = []
const ackOutbox = store.ackOutbox.bind(store)
store.ackOutbox = async (p, token, n) => { acks.push(n); await ackOutbox(p, token, n) }

interface Sent { m: OutMessage, routed: () => void }
const sent: Sent[] = []
const engine = new ThingEngine(store, {
  log: createLogger('silent'),
  liveNodes: () => ['b1'],
  publish: (m) => new Promise<void>((resolve) => { sent.push({ m, routed: resolve }) }),
}, { ...DEFAULT_ENGINE_OPTIONS, brokerId: 'b1', partitions: 1, readBlockMs: 20 })
await engine.start()
t.teardown(() => {
  for (const s of sent) s.routed()
  return engine.stop()
})
await engine.importModule({ version: 1, templates: [{ id: 'T', properties: { n: { type: 'integer' } } }], things: [{ id: 'x', template: 'T' }], rules: [] })

const changed = (): number[] => sent.filter((s) => s.m.topic === 'things/x/changed/n').map((s) => (JSON.parse(s.m.payload) as { value: number }).value)
const turns = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve)) }
const write = (n: number): Promise<void> => engine.ingest({ kind: 'report', thingId: 'x', property: 'n' }, Buffer.from(String(n)), 'dev')

t.test('a batch is handed over before the previous one is routed; removals wait for routing, in order', async (t) => {
  await write(1)
  await waitFor(() => changed().length === 1, 'batch 1 handed to the broker')
  const first = sent.length
  await write(2)
  await waitFor(() => changed().length === 2, 'batch 2 handed over while batch 1 is not routed yet')
  t.same(changed(), [1, 2], 'in commit order')
  t.equal((await store.load(0)).outbox.length, 2, 'both batches still in the outbox')

  for (const s of sent.slice(first)) s.routed()
  await turns(20)
  t.same(acks, [], 'batch 2 routed first: nothing is removed before batch 1 is')
  t.equal((await store.load(0)).outbox.length, 2)

  for (const s of sent.slice(0, first)) s.routed()
  await waitFor(() => acks.reduce((a, b) => a + b, 0) === 2, 'both removed')
  t.equal((await store.load(0)).outbox.length, 0, 'outbox empty')
  t.ok(acks.length <= 2, 'removals coalesced or one each')
})

t.test('the retained state of each batch goes out in commit order', async (t) => {
  const from = sent.length
  for (let n = 3; n <= 6; n++) {
    await write(n)
    await waitFor(() => changed().includes(n), `batch ${n} handed over`)
  }
  const states = sent.slice(from).filter((s) => s.m.topic === 'things/x/state').map((s) => (JSON.parse(s.m.payload) as { properties: { n: { value: number } } }).properties.n.value)
  t.same(states, [3, 4, 5, 6], 'each batch shows its own state, in order')
  for (const s of sent) s.routed()
  await waitFor(async () => (await store.load(0)).outbox.length === 0, 'all removed')
})
