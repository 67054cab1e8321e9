import t from 'tap'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// RedisStore.read against a real redis-server. Redis (7.0) answers a blocked
// multi-stream XREAD as soon as one of its streams gets an entry, with that
// stream only, although one ingest call appended to several partitions: the
// store reads the others at once, so one owner round carries them all.

const redis = await startRedis()
t.teardown(() => redis.stop())
const cmd = redis.client()
const admin = redis.client()
defineScripts(cmd, ENGINE_LUA_DIR)
const keys = createKeys('readtest').engine
const store = new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 8, backlogMax: 100, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 10_000 })
t.teardown(() => store.close())
const entry = (n: number) => ({ t: `t${n}`, k: 'w' as const, p: 'x', v: String(n), n, o: 'c', d: 0 })
const everyPartition = new Map([0, 1, 2, 3, 4, 5, 6, 7].map((p) => [p, ''] as const))
const blocked = async (): Promise<boolean> => /blocked_clients:1\b/.test(await admin.info('clients'))

t.test('a blocked read woken by one ingest call returns every partition it appended to', async (t) => {
  const read = store.read(everyPartition, 100, 5000)
  await waitFor(blocked, 'the read blocked in Redis')
  // One event-loop turn: one ingest call appending to partitions 1, 4 and 6.
  await Promise.all([store.append(1, entry(1)), store.append(4, entry(4)), store.append(6, entry(6))])
  const got = await read
  t.same(got.map((b) => b.partition).sort(), [1, 4, 6], 'all three partitions in one read')
  t.same(got.map((b) => b.entries.map((e) => e.v)).flat().sort(), ['1', '4', '6'])
})

t.test('blockMs 0 reads without blocking (not BLOCK 0, which waits forever)', async (t) => {
  const from = new Map([[2, ''], [3, '']])
  const started = Date.now()
  const got = await Promise.race([store.read(from, 100, 0), new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 2000))])
  t.same(got, [], 'nothing to read: answered at once')
  t.ok(Date.now() - started < 1000)
})
