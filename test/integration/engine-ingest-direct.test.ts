import t from 'tap'
import { connectEngineRedis } from '../../broker/engine-bridge.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { createLogger } from '../../broker/log.ts'
import { RedisStore } from '../../engine/runtime/index.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// A device write's append (the ingest script) and an owner's commit are
// written to Redis when the store sends them, not through ioredis'
// auto-pipeline, where each waited a turn and then for the replies of the
// pipeline before it (one in flight per connection): every write waited for
// the previous round's commits before it was sent, and a round's commits for
// the previous round's. Here an auto-pipelined BLPOP holds the
// engine's command connection: the bytes of an append, and of a commit, must
// still reach Redis (the connection's query buffer) before the BLPOP returns.

const redis = await startRedis()
const admin = redis.client()
t.teardown(() => redis.stop())

async function clientLine (name: string): Promise<string> {
  return (await admin.client('LIST') as string).split('\n').find((l) => l.includes(` name=${name} `)) ?? ''
}

const calls = {
  'an append': (store: RedisStore) => store.append(1, { t: 'x', k: 'w', p: 'n', v: '1', n: Date.now(), o: 'dev', d: 0 }),
  // No lease is held: Redis refuses it (fenced), after it ran.
  'a commit': (store: RedisStore) => store.commit({ partition: 1, token: 1, from: '', to: '1-0', states: new Map(), history: [], alerts: [], outbox: [], feedback: [] }),
}

for (const [what, call] of Object.entries(calls)) {
  t.test(`${what} is written while an auto-pipelined command holds the engine connection`, async (t) => {
    const log = createLogger('silent')
    const nodeId = what.replace(/\W/g, '')
    const { cmd, reader, sub } = connectEngineRedis({ url: redis.url, commandTimeoutMs: 10_000, log }, nodeId)
    const store = new RedisStore({ cmd, reader, sub, keys: createKeys(nodeId).engine, partitions: 4, backlogMax: 1000, historyMax: 10, historyMaxAgeMs: 0, leaseMs: 2000 })
    t.teardown(() => store.close())
    await cmd.ping()
    const name = `thingmesh:${nodeId}:engine`
    const holding = cmd.blpop('engine-direct-nothing', 3)
    await waitFor(async () => (await clientLine(name)).includes(' cmd=blpop'), 'the BLPOP to block the connection', 2000)
    const sent = call(store).then(() => 'done', (err: Error) => err.message)
    await waitFor(async () => Number(/ qbuf=(\d+)/.exec(await clientLine(name))?.[1] ?? 0) > 0, `${what} in Redis before the BLPOP returns`, 2000)
    t.ok((await clientLine(name)).includes(' cmd=blpop'), 'the BLPOP still holds the connection')
    t.equal(await holding, null)
    if (what === 'an append') {
      t.equal(await sent, 'done')
      t.equal(await admin.xlen(createKeys(nodeId).engine.logOf(1)), 1, 'and the append completes after it, in the log')
    } else {
      t.match(await sent, /ENGINE_FENCED/, 'and the commit runs after it (refused: no lease)')
    }
  })
}
