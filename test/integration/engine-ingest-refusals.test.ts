import t from 'tap'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { startRedis } from '../helpers/redis.ts'

// lua/ingest.lua answers with the positions of the refused appends only (its
// logs full): each caller of one batch must get its own outcome, refusals in
// the middle of a batch included.

const redis = await startRedis()
t.teardown(() => redis.stop())
const cmd = redis.client()
defineScripts(cmd, ENGINE_LUA_DIR)
const keys = createKeys('refusals').engine
const store = new RedisStore({ cmd, reader: redis.client(), sub: redis.client(), keys, partitions: 4, backlogMax: 1, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 10_000 })
const e = (n: number) => ({ t: 'a', k: 'w' as const, p: 'x', v: String(n), n, o: 'c', d: 0 })

t.test('refused appends in a batch are told apart from the accepted ones around them', async (t) => {
  const results = await Promise.allSettled([store.append(0, e(1)), store.append(0, e(2)), store.append(1, e(3)), store.append(0, e(4)), store.append(2, e(5))])
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'rejected', 'fulfilled'], 'one entry per log of 1')
  t.match((results[1] as PromiseRejectedResult).reason, { code: 'ENGINE_BACKLOG_FULL' })
  t.equal(await cmd.xlen(keys.logOf(0)), 1)
  t.equal(await cmd.xlen(keys.logOf(1)), 1)
})
