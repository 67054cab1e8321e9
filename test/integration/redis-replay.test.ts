import t from 'tap'
import type { Redis } from 'ioredis'
import { connectRedis } from '../../broker/cluster/redis.ts'
import { createLogger } from '../../broker/log.ts'
import { startRedis } from '../helpers/redis.ts'
import { startProxy } from '../chaos/faults.ts'
import { waitFor } from '../helpers/wait.ts'

// connectRedis never replays a command whose promise already failed. These
// tests put a pipeline on a black-holed link, fail part of it the way
// ioredis' command timeout does (Command#reject), cut the link and let ioredis
// replay what was unanswered. ioredis' own timers fail a pipeline's commands
// together (armed in one turn, fired in one timers phase), so a partial
// failure is forced here by hand: it is the case that must not desynchronise
// the connection.

t.setTimeout(60_000)

interface Queued { reject(err: Error): void, promise: Promise<unknown> }
const queueOf = (p: object): Queued[] => (p as { _queue: Queued[] })._queue

const r = await startRedis()
const proxy = await startProxy(r.port)
const direct = r.client()
const log = createLogger('silent')
// A command timeout far above the test's length: the only failures are the ones forced below.
const redis = connectRedis({ url: `redis://127.0.0.1:${proxy.port}`, name: 'replay-test', commandTimeoutMs: 30_000, log })
t.teardown(async () => { redis.disconnect(); await proxy.close(); await r.stop() })

/** The value, or a marker if none came in 3 s: a desynchronised connection answers nothing (or the wrong caller). */
function within<T> (p: Promise<T>): Promise<T | 'no reply in 3 s'> {
  return Promise.race([p, new Promise<'no reply in 3 s'>((resolve) => setTimeout(() => resolve('no reply in 3 s'), 3000))])
}

async function replayAfterCut (client: Redis): Promise<void> {
  let reconnected = false
  client.once('ready', () => { reconnected = true })
  proxy.set('pass')
  proxy.cut()
  await waitFor(() => reconnected, 'the client to reconnect and replay', 10_000)
}

async function blackHoled (send: () => object): Promise<{ pipeline: object, settled: Promise<unknown> }> {
  await waitFor(() => redis.status === 'ready', 'client ready')
  proxy.set('drop')
  const pipeline = send()
  const settled = (pipeline as { exec(): Promise<unknown> }).exec().catch((err: Error) => err)
  // Written into the black hole, unanswered.
  await new Promise((resolve) => setTimeout(resolve, 50))
  return { pipeline, settled }
}

t.test('a pipeline with one failed command is still written, and later replies match their commands', async (t) => {
  await direct.del('rp:a', 'rp:b', 'rp:probe')
  await direct.set('rp:probe', 'probe-value')
  const { pipeline, settled } = await blackHoled(() => redis.pipeline().set('rp:a', '1').set('rp:b', '2'))
  queueOf(pipeline)[1]!.reject(new Error('Command timed out'))
  await replayAfterCut(redis)
  // Without the fix the replayed SET rp:a sits in the reply queue unwritten,
  // this GET's reply resolves it, and the GET itself never gets an answer.
  const got = await within(redis.get('rp:probe'))
  t.equal(got, 'probe-value', 'the GET after the replay got its own reply')
  await within(settled)
  t.equal(await direct.get('rp:a'), '1', 'the command that had not failed was replayed')
  t.equal(await direct.get('rp:b'), null, 'the failed command was not replayed')
})

t.test('a transaction is replayed whole: a lone failed EXEC does not leave the connection inside MULTI', async (t) => {
  await direct.del('rp:t1', 'rp:t2')
  await direct.set('rp:probe', 'probe-2')
  const { pipeline, settled } = await blackHoled(() => redis.multi().set('rp:t1', 'x').set('rp:t2', 'y'))
  const q = queueOf(pipeline)
  t.equal(q.length, 4, 'MULTI, two SETs, EXEC')
  q[3]!.reject(new Error('Command timed out'))
  await replayAfterCut(redis)
  // Skipping EXEC alone would leave Redis queueing: this GET would read "QUEUED".
  const got = await within(redis.get('rp:probe'))
  t.equal(got, 'probe-2', 'the GET after the replay got its own reply')
  await within(settled)
  t.same([await direct.get('rp:t1'), await direct.get('rp:t2')], ['x', 'y'], 'the transaction was applied whole')
})

t.test('a transaction whose MULTI failed is not replayed at all', async (t) => {
  await direct.del('rp:u1', 'rp:u2')
  await direct.set('rp:probe', 'probe-3')
  const { pipeline, settled } = await blackHoled(() => redis.multi().set('rp:u1', 'x').set('rp:u2', 'y'))
  for (const c of queueOf(pipeline)) c.reject(new Error('Command timed out'))
  await replayAfterCut(redis)
  const got = await within(redis.get('rp:probe'))
  t.equal(got, 'probe-3', 'the GET after the replay got its own reply')
  t.type(await within(settled), Error, 'the caller saw the transaction fail')
  t.same([await direct.get('rp:u1'), await direct.get('rp:u2')], [null, null], 'nothing of it was written')
})
