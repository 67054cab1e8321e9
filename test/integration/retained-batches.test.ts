import t from 'tap'
import { Redis } from 'ioredis'
import { encodeFrame } from '../../broker/cluster/codec.ts'
import type { StoredRetained } from '../../broker/mqtt/retained-delivery.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { RedisPersistence } from '../../broker/persistence/redis-persistence.ts'
import { startRedis } from '../helpers/redis.ts'

// Retained messages are read for a new subscription a batch at a time, and a
// batch is bounded by bytes, not only by count: 1,000 large messages in one
// batch would all be held in the node at once.

const r = await startRedis()
const redis = r.client()
t.teardown(async () => { redis.disconnect(); await r.stop() })
const keys = createKeys('batches')
const persistence = new RedisPersistence({ redis, keys, maxQueuedMessages: 100, mayStore: () => true })

async function store (topics: string[], size: number): Promise<void> {
  const payload = Buffer.alloc(size, 'r')
  for (const topic of topics) {
    const frame = encodeFrame('', { topic, payload, qos: 0, retain: true, dup: false, brokerId: '', brokerCounter: 0 })
    await redis.multi().hset(keys.retained, topic, frame).zadd(keys.retainedIndex, 0, topic).exec()
  }
}

async function batchesOf (filters: string[]): Promise<StoredRetained[][]> {
  const out: StoredRetained[][] = []
  for await (const b of persistence.retainedBatches(filters)) out.push(b)
  return out
}

const bytes = (batch: StoredRetained[]): number => batch.reduce((n, p) => n + p.payload.length, 0)

t.test('large messages: every batch after the first holds about 256 KiB (HSCAN COUNT is a hint: at most 1 MiB), all messages arrive once', async (t) => {
  await store(Array.from({ length: 300 }, (_, i) => `big/${i}`), 64 * 1024)
  for (const filter of ['#', 'big/#', '+/#']) {
    const batches = await batchesOf([filter])
    const topics = batches.flat().map((p) => p.topic)
    t.equal(topics.length, 300, `${filter}: every message`)
    t.equal(new Set(topics).size, 300, `${filter}: each once`)
    const later = batches.slice(1).map(bytes)
    t.ok(later.every((n) => n <= 1024 * 1024), `${filter}: batches after the first bounded by bytes (largest ${Math.max(...later)} B)`)
    t.ok(batches.length >= 20, `${filter}: 300 x 64 KiB in ${batches.length} batches`)
  }
})

t.test('small messages: batches of many, few round trips', async (t) => {
  await redis.del(keys.retained, keys.retainedIndex)
  await store(Array.from({ length: 3000 }, (_, i) => `small/${i}`), 10)
  const batches = await batchesOf(['small/#'])
  t.equal(batches.flat().length, 3000)
  t.ok(batches.length <= 4, `3,000 small messages in ${batches.length} batches`)
})

t.test("the next batch's read is written to Redis while the current batch is still being sent, not after it", async (t) => {
  await redis.del(keys.retained, keys.retainedIndex)
  await store(Array.from({ length: 1000 }, (_, i) => `next/${i}`), 10)
  // The node's command connection auto-pipelines (cluster/redis.ts): a command waits for a setImmediate there.
  const piped = new Redis({ host: '127.0.0.1', port: r.port, enableAutoPipelining: true, lazyConnect: true })
  await piped.connect()
  t.teardown(() => piped.disconnect())
  const reader = new RedisPersistence({ redis: piped, keys, maxQueuedMessages: 100, mayStore: () => true })
  for (const filter of ['#', 'next/#']) {
    const it = reader.retainedBatches([filter])[Symbol.asyncIterator]()
    t.ok((await it.next()).value.length < 1000, `${filter}: a first batch, not all`)
    const stream = (piped as unknown as { stream: { bytesWritten: number } }).stream
    const before = stream.bytesWritten
    const next = it.next()
    // As RetainedDelivery does: ask for the next batch, then send this one in the same synchronous run (no new turn).
    for (let i = 0; i < 20; i++) await Promise.resolve()
    t.ok(stream.bytesWritten > before, `${filter}: the read went out before the turn ended`)
    await next
    await it.return?.(undefined)
  }
})
