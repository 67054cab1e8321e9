import t from 'tap'
import { connectEngineRedis } from '../../broker/engine-bridge.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { createLogger } from '../../broker/log.ts'
import { RedisStore } from '../../engine/runtime/index.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// A device write's append (the ingest script) is written to Redis when the
// store sends it, not through ioredis' auto-pipeline, where it waited a turn
// and then for the replies of the pipeline before it: the partition owner's
// commits share the connection, so every write (and its change notification)
// waited a commit round trip more. Here an auto-pipelined BLPOP holds the
// engine's command connection: the append's bytes must still reach Redis
// (the connection's query buffer) before the BLPOP returns.

const redis = await startRedis()
const admin = redis.client()
t.teardown(() => redis.stop())

async function clientLine (name: string): Promise<string> {
  return (await admin.client('LIST') as string).split('\n').find((l) => l.includes(` name=${name} `)) ?? ''
}

t.test('an append is written while an auto-pipelined command holds the engine connection', async (t) => {
  const log = createLogger('silent')
  const { cmd, reader, sub } = connectEngineRedis({ url: redis.url, commandTimeoutMs: 10_000, log }, 'direct')
  const store = new RedisStore({ cmd, reader, sub, keys: createKeys('direct').engine, partitions: 4, backlogMax: 1000, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 2000 })
  t.teardown(() => store.close())
  await cmd.ping()
  const name = 'thingmesh:direct:engine'
  const holding = cmd.blpop('engine-direct-nothing', 3)
  await waitFor(async () => (await clientLine(name)).includes(' cmd=blpop'), 'the BLPOP to block the connection', 2000)
  const appended = store.append(1, { t: 'x', k: 'w', p: 'n', v: '1', n: Date.now(), o: 'dev', d: 0 })
  await waitFor(async () => Number(/ qbuf=(\d+)/.exec(await clientLine(name))?.[1] ?? 0) > 0, 'the append in Redis before the BLPOP returns', 2000)
  t.ok((await clientLine(name)).includes(' cmd=blpop'), 'the BLPOP still holds the connection')
  t.equal(await holding, null)
  await appended
  t.equal(await admin.xlen(createKeys('direct').engine.logOf(1)), 1, 'and the append completes after it, in the log')
})
