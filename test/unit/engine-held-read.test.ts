import t from 'tap'
import { createLogger } from '../../broker/log.ts'
import { partitionOf } from '../../engine/index.ts'
import { MemoryStore, ThingEngine, DEFAULT_ENGINE_OPTIONS, type OutMessage } from '../../engine/runtime/index.ts'
import { waitFor } from '../helpers/wait.ts'

// A partition held back by its commits in flight is left out of the owner's
// log read. The read over the others must then not block for readBlockMs:
// once the commit is answered, the held partition's backlog is read at once
// (engine.ts loop), not when a blocking read over idle partitions times out.

const store = new MemoryStore({ partitions: 2, backlogMax: 1000, historyMax: 10, historyMaxAgeMs: 0 })
let open!: () => void
const gate = new Promise<void>((resolve) => { open = resolve })
const commit = store.commit.bind(store)
let commits = 0
store.commit = async (c) => { commits++; await gate; await commit(c) }
// Reads that leave x's partition out: the owner reading only the other one.
const held = partitionOf('x', 2)
const read = store.read.bind(store)
let readsWithoutHeld = 0
store.read = async (from, count, blockMs) => { if (!from.has(held)) readsWithoutHeld++; return await read(from, count, blockMs) }

const sent: OutMessage[] = []
const engine = new ThingEngine(store, {
  log: createLogger('silent'),
  liveNodes: () => ['b1'],
  publish: async (m) => { sent.push(m) },
}, { ...DEFAULT_ENGINE_OPTIONS, brokerId: 'b1', partitions: 2, readBlockMs: 5000, maxCommitsInFlight: 1 })
await engine.start()
t.teardown(() => engine.stop())
await engine.importModule({ version: 1, templates: [{ id: 'T', properties: { n: { type: 'integer' } } }], things: [{ id: 'x', template: 'T' }], rules: [] })
t.equal(engine.ownedPartitions().length, 2, 'both partitions owned')

const changed = (): number[] => sent.filter((m) => m.topic === 'things/x/changed/n').map((m) => (JSON.parse(m.payload) as { value: number }).value)
const write = (n: number): Promise<void> => engine.ingest({ kind: 'report', thingId: 'x', property: 'n' }, Buffer.from(String(n)), 'dev')

t.test('the held partition is read as soon as its commit is answered', async (t) => {
  await write(1)
  await waitFor(() => commits === 1, 'first commit sent (and held)')
  const before = readsWithoutHeld
  await write(2)
  await waitFor(() => readsWithoutHeld > before, 'the owner reading the other (idle) partition without the held one')
  const released = Date.now()
  open()
  await waitFor(() => changed().length === 2, 'second write applied and published', 4000)
  t.same(changed(), [1, 2])
  t.ok(Date.now() - released < 1000, `applied ${Date.now() - released} ms after the commit was answered (readBlockMs is 5000)`)
})
