import t from 'tap'
import type { Redis } from 'ioredis'
import { connectRedis, defineScripts } from '../../broker/cluster/redis.ts'
import { createLogger } from '../../broker/log.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// The bus batches its publishes per turn and target node itself
// (cluster/bus.ts). Through ioredis' auto-pipeline each batch also waited a
// loop turn and, while a pipeline was in flight, for that pipeline's replies.
// Commands named `direct` are written when called: behind a BLPOP that holds
// the connection's pipeline, their bytes reach Redis (the connection's query
// buffer) before the BLPOP returns; auto-pipelined, they would not be written.

const redis = await startRedis()
const admin = redis.client()
t.teardown(() => redis.stop())

/** The query buffer of the named connection: bytes Redis received but did not run yet. */
async function queued (name: string): Promise<number> {
  const line = (await admin.client('LIST') as string).split('\n').find((l) => l.includes(` name=${name} `))
  return Number(/ qbuf=(\d+)/.exec(line ?? '')?.[1] ?? 0)
}

async function blocked (name: string): Promise<boolean> {
  const line = (await admin.client('LIST') as string).split('\n').find((l) => l.includes(` name=${name} `))
  return line?.includes(' cmd=blpop') === true
}

for (const [what, call] of [
  ['PUBLISH', (c: Redis) => c.publish('direct-ch', 'x')],
  ['the busPublish script', (c: Redis) => (c as unknown as { busPublish(...a: unknown[]): Promise<number> }).busPublish('direct-log', 'direct-ch', Buffer.from('batch'), 5000)],
] as const) {
  t.test(`${what} is written while an auto-pipelined command is in flight`, async (t) => {
    const name = `direct-${what.replace(/\W/g, '')}`
    const cmd = connectRedis({ url: redis.url, name, commandTimeoutMs: 10_000, log: createLogger('silent'), direct: ['busPublish', 'publish'] })
    defineScripts(cmd, new URL('../../broker/cluster/lua/', import.meta.url))
    t.teardown(() => cmd.disconnect())
    await cmd.ping()
    const holding = cmd.blpop('direct-nothing', 3)
    await waitFor(() => blocked(name), 'the BLPOP to block the connection', 2000)
    const sent = call(cmd)
    await waitFor(async () => (await queued(name)) > 0, `${what} bytes in Redis before the BLPOP returns`, 2000)
    t.ok(await blocked(name), 'the BLPOP still holds the connection')
    t.equal(await holding, null)
    t.ok((await sent) >= 0, 'and it completes after it')
  })
}
