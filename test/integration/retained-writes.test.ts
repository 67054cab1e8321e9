import t from 'tap'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { RetainedWrites } from '../../broker/persistence/retained-writes.ts'
import { startRedis } from '../helpers/redis.ts'

// The retained stores of one tick go to Redis as one script call; these check
// that coalescing keeps the semantics of one call per write.

const r = await startRedis()
const redis = r.client()
t.teardown(async () => { redis.disconnect(); await r.stop() })
defineScripts(redis, new URL('../../broker/persistence/lua/', import.meta.url))
const many = (redis as unknown as { storeRetainedMany(...a: Array<string | Buffer>): Promise<number[]> }).storeRetainedMany.bind(redis)
let calls = 0
const writes = new RetainedWrites((pairs) => { calls++; return many('ret', 'idx', ...pairs) })

t.test('writes of one tick share a call and apply in order', async (t) => {
  calls = 0
  const results = await Promise.all([
    writes.write('a/1', 'one'),
    writes.write('a/2', Buffer.from('two')),
    writes.write('a/1', ''), // deleted after being stored in the same call
    writes.write('a/3', 'three'),
    writes.write('a/3', 'three again'),
    writes.write('a/none', ''),
  ])
  t.equal(calls, 1, 'one script call for the tick')
  t.same(results, [1, 1, 1, 1, 1, 0], 'a delete reports whether the topic held a message')
  t.same(await redis.hgetall('ret'), { 'a/2': 'two', 'a/3': 'three again' }, 'the last write of a topic wins')
  t.same((await redis.zrange('idx', 0, -1)).sort(), ['a/2', 'a/3'], 'the index follows the hash')
})

t.test('a large tick is split into bounded calls, all applied', async (t) => {
  calls = 0
  await redis.del('ret', 'idx')
  await Promise.all(Array.from({ length: 600 }, (_, i) => writes.write(`b/${i}`, `v${i}`)))
  t.ok(calls >= 3, `600 writes went out in ${calls} calls of at most 256`)
  t.equal(await redis.hlen('ret'), 600)
  t.equal(await redis.zcard('idx'), 600)
})

t.test('a failed call rejects each of its writers', async (t) => {
  const failing = new RetainedWrites(() => Promise.reject(new Error('Redis away')))
  const settled = await Promise.allSettled([failing.write('c/1', 'x'), failing.write('c/2', 'y')])
  t.same(settled.map((s) => s.status), ['rejected', 'rejected'])
})

t.test('writes of separate ticks are separate calls', async (t) => {
  calls = 0
  await writes.write('d/1', 'x')
  await writes.write('d/2', 'y')
  t.equal(calls, 2)
})
