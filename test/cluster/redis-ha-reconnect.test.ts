import t from 'tap'
import { Writable } from 'node:stream'
import { pino, type Logger } from 'pino'
import type { Redis } from 'ioredis'
import { connectRedis, linkStalled } from '../../broker/cluster/redis.ts'
import { startSentinel } from '../helpers/sentinel.ts'
import { startProxy } from '../chaos/faults.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// The connection layer of broker/cluster/redis.ts against real servers:
// a Sentinel connection ioredis gives up on is restarted, and a link that
// goes silent (no FIN, no RST) is noticed within half the command timeout.
t.setTimeout(120_000)

function logged (): { log: Logger, events: () => string[] } {
  const lines: string[] = []
  const sink = new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(...chunk.toString().split('\n').filter(Boolean)); cb() } })
  return { log: pino({ level: 'debug' }, sink) as Logger, events: () => lines.map((l) => (JSON.parse(l) as { event?: string }).event ?? '') }
}

t.test('a Sentinel connection that ioredis ends by itself is restarted', async (t) => {
  const setup = await startSentinel({ replicas: 1 })
  const { log, events } = logged()
  let redis: Redis | undefined
  t.teardown(async () => {
    for (const s of setup.sentinels) { try { process.kill(s.proc.pid!, 'SIGCONT') } catch { /* gone */ } }
    redis?.disconnect()
    await setup.stop()
  })
  redis = connectRedis({ url: setup.url, name: 'end-test', commandTimeoutMs: 2000, log })
  await waitFor(() => redis!.status === 'ready', 'first connection', 10_000)
  await redis.set('k', 'v1')

  // The race of ioredis#1683, made deterministic: the connector is
  // disconnected while it waits for a Sentinel's answer, so connect()
  // rejects and ioredis sets status 'end' (what a +switch-master arriving
  // during a reconnect does).
  for (const s of setup.sentinels) process.kill(s.proc.pid!, 'SIGSTOP')
  redis.disconnect(true)
  await waitFor(() => redis!.status === 'connecting', 'reconnect asking a (paused) Sentinel', 10_000, 5)
  const ended = new Promise<void>((resolve) => redis!.once('end', () => resolve()))
  redis.disconnect(true)
  for (const s of setup.sentinels) process.kill(s.proc.pid!, 'SIGCONT')
  await ended
  t.pass('ioredis ended the connection by itself')

  await waitFor(() => redis!.status === 'ready', 'the connection to be restarted', 15_000)
  t.equal(await redis.get('k'), 'v1', 'commands work again on the restarted connection')
  t.ok(events().includes('redis.reconnect_after_end'), 'the restart was logged')

  // A requested close is not undone.
  const closed = new Promise<void>((resolve) => redis!.once('end', () => resolve()))
  redis.disconnect()
  await closed
  await new Promise<void>((resolve) => setImmediate(resolve))
  t.equal(redis.status, 'end', 'disconnect() stays disconnected')
})

t.test('a silently cut link is noticed within half the command timeout and recovers', async (t) => {
  const r = await startRedis()
  const proxy = await startProxy(r.port)
  const { log, events } = logged()
  const redis = connectRedis({ url: `redis://127.0.0.1:${proxy.port}`, name: 'cut-test', commandTimeoutMs: 2000, log })
  t.teardown(async () => { redis.disconnect(); await proxy.close(); await r.stop() })
  await waitFor(() => redis.status === 'ready', 'connected through the proxy', 10_000)

  const cutAt = Date.now()
  proxy.set('drop')
  await waitFor(() => linkStalled(redis), 'the cut to be noticed', 5000, 10)
  const noticedMs = Date.now() - cutAt
  t.comment(`silent cut noticed after ${noticedMs} ms (command timeout 2000 ms)`)
  t.ok(noticedMs <= 2000, `noticed within 2 s (${noticedMs} ms)`)
  t.ok(events().includes('redis.stalled'), 'logged as a stalled link')
  await t.rejects(redis.set('during', 'cut'), 'a command during the cut fails (command timeout)')
  await waitFor(() => events().includes('redis.reconnect_silent'), 'the silent connection to be replaced', 10_000, 10)

  proxy.set('pass')
  await waitFor(() => redis.status === 'ready', 'reconnected after the heal', 15_000)
  t.equal(await redis.set('after', 'heal'), 'OK', 'commands work after the heal')
  const direct = r.client()
  t.equal(await direct.get('during'), null, 'the command refused during the cut was not replayed after the heal')
})
