import t from 'tap'
import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { SessionRegistry } from '../../broker/cluster/sessions.ts'
import { RedisPersistence } from '../../broker/persistence/redis-persistence.ts'
import { ThingmeshError } from '../../broker/errors.ts'
import { startRedis } from '../helpers/redis.ts'
import { once } from '../helpers/wait.ts'

// A node the cluster declared dead (its brokerId in `gone`) may still reach
// Redis for about one round trip after its link comes back: ioredis replays
// what it queued during the cut before the heartbeat can answer "fenced".
// The per-broker write scripts refuse such writes themselves.

t.setTimeout(60_000)

const r = await startRedis()
t.teardown(() => r.stop())

const DEAD = 'n3~dead'
const LIVE = 'n1~live'

function persistenceOn (redis: Redis, cluster: string): RedisPersistence {
  return new RedisPersistence({ redis, keys: createKeys(cluster), maxQueuedMessages: 100, mayStore: () => true })
}

t.test('a brokerId in gone cannot claim a session, store a will or change its interest set; a live one can', async (t) => {
  const redis = r.client()
  const keys = createKeys('fenced')
  defineScripts(redis, new URL('../../broker/cluster/lua/', import.meta.url))
  await redis.zadd(keys.gone, Date.now(), DEAD)

  const live = new SessionRegistry(redis, keys, LIVE)
  const dead = new SessionRegistry(redis, keys, DEAD)

  // The dead incarnation's claim of a client id nobody holds: refused, nothing written.
  const refused = await dead.claim('c-free', true).then(() => null, (err: unknown) => err)
  t.ok(refused instanceof ThingmeshError, 'a typed error')
  t.equal((refused as ThingmeshError).code, 'BROKER_FENCED', 'a typed refusal (the CONNECT hook answers any failed claim with CONNACK 3)')
  t.same((refused as ThingmeshError).details, { brokerId: DEAD })
  t.equal(await redis.hget(keys.owners, 'c-free'), null, 'no owners record')
  t.equal(await redis.get(keys.epoch), null, 'no epoch drawn')

  // A live node claims as before.
  const claim = await live.claim('c-held', false)
  t.equal(claim.epoch, 1)
  t.equal(claim.previous, null)
  t.equal(await redis.hget(keys.owners, 'c-held'), `${LIVE}|1|up|0`)

  // A claim replayed by the dead incarnation does not take the id from its live holder,
  // nor delete the session state and will of the live connection (a clean claim discards them).
  await redis.hset(keys.wills, 'c-held', `${LIVE}\nframe`)
  await redis.hset(keys.incomingOf('c-held'), '1', 'frame')
  await t.rejects(dead.claim('c-held', false), { code: 'BROKER_FENCED' })
  t.equal(await redis.hget(keys.owners, 'c-held'), `${LIVE}|1|up|0`, 'the live holder keeps the client id')
  t.equal(await redis.hget(keys.wills, 'c-held'), `${LIVE}\nframe`, 'its will is kept')
  t.equal(await redis.hget(keys.incomingOf('c-held'), '1'), 'frame', 'its inbound QoS 2 state is kept')
  const again = await live.claim('c-held', true)
  t.equal(again.epoch, 2, 'the refused claim drew no epoch')

  // Interest: the reaper deleted the dead node's set; a replayed change must not re-create it.
  const changeInterest = (b: string, ...filters: string[]): Promise<number> =>
    (redis as unknown as { changeInterest(...a: string[]): Promise<number> })
      .changeInterest(keys.interestOf(b), keys.interestSeqOf(b), keys.gone, b, keys.controlChannel, 'add', ...filters)
  await t.rejects(changeInterest(DEAD, 'a/#'), /^BROKER_FENCED /)
  t.equal(await redis.exists(keys.interestOf(DEAD), keys.interestSeqOf(DEAD)), 0, 'no interest set or version for the dead node')
  t.equal(await changeInterest(LIVE, 'a/#'), 1)
  t.same(await redis.smembers(keys.interestOf(LIVE)), ['a/#'])

  // A release by the dead incarnation of its own record still goes through (lua/releaseSession-1.lua says why).
  await redis.hset(keys.owners, 'c-dead', `${DEAD}|7|up|0`)
  await dead.release('c-dead', 7, false)
  t.equal(await redis.hget(keys.owners, 'c-dead'), null, 'its own clean-session record is removed')
  await dead.release('c-held', 1, true)
  t.equal(await redis.hget(keys.owners, 'c-held'), `${LIVE}|2|up|1`, 'a record that is not its own is untouched')
  redis.disconnect()
})

t.test('a will stored by a brokerId in gone is refused and leaves the live connection\'s will in place', async (t) => {
  const redis = r.client()
  const keys = createKeys('fenced-wills')
  await redis.zadd(keys.gone, Date.now(), DEAD)
  const live = persistenceOn(redis, 'fenced-wills')
  const dead = persistenceOn(redis, 'fenced-wills')
  // setup takes the aedes broker: its id, and its 'subscribe' events (retained delivery).
  await live.setup(Object.assign(new EventEmitter(), { id: LIVE }))
  await dead.setup(Object.assign(new EventEmitter(), { id: DEAD }))
  const will = (payload: string): Parameters<RedisPersistence['putWill']>[1] =>
    ({ cmd: 'publish', topic: 'w/c1', payload: Buffer.from(payload), qos: 1, retain: false, dup: false, brokerId: '', brokerCounter: 0 })

  await live.putWill({ id: 'c1' }, will('live'))
  await t.rejects(dead.putWill({ id: 'c1' }, will('dead')), /^BROKER_FENCED /)
  const stored = await live.getWill({ id: 'c1' })
  t.equal(stored?.payload.toString(), 'live', 'the live connection\'s will is kept')
  t.same(await redis.smembers(keys.willsOf(LIVE)), ['c1'])
  t.equal(await redis.exists(keys.willsOf(DEAD)), 0, 'nothing listed under the dead broker')
  redis.disconnect()
})

t.test('a closed persistence stops retrying its resync', async (t) => {
  const redis = r.client()
  const keys = createKeys('resync-close')
  const persistence = persistenceOn(redis, 'resync-close')
  // For the control at the end; made now, as each persistence (re)defines its scripts on the connection.
  const open = persistenceOn(redis, 'resync-close')
  // Count every snapshot attempt (the script stays real; only the call is observed).
  const scripted = redis as unknown as { snapshotSubscriptions(...a: string[]): Promise<unknown> }
  const snapshot = scripted.snapshotSubscriptions.bind(redis)
  const attempts = new EventEmitter()
  let n = 0
  scripted.snapshotSubscriptions = (...a: string[]) => { n++; attempts.emit('attempt', n); return snapshot(...a) }

  // A subscription client list of the wrong type: every snapshot fails (WRONGTYPE), as on a cut link.
  await redis.set(keys.subClients, 'not a set')
  let settled = false
  const running = persistence.resync().then(() => { settled = true })
  while (n < 3) await once(attempts, 'attempt')
  t.equal(settled, false, 'retrying while the snapshot fails')

  persistence.close()
  const outcome = await Promise.race([running.then(() => 'ended'), once(attempts, 'attempt', 5000).then(() => 'tried again', () => 'still running after 5 s')])
  t.equal(outcome, 'ended', 'the running resync ends at close, without another attempt')
  const after = n

  await redis.del(keys.subClients)
  await persistence.resync()
  t.equal(n, after, 'a resync asked for after close makes no attempt')
  t.equal(persistence.index.stale, true, 'the index stays stale: it was never loaded')
  await t.rejects(persistence.subscriptionsByTopic('a/b'), /persistence closed/, 'a publish needing the index is refused, not served stale')

  // Control: the same failure on an open persistence is retried until it clears.
  await redis.set(keys.subClients, 'not a set')
  const before = n
  const healed = open.resync()
  while (n < before + 2) await once(attempts, 'attempt')
  await redis.del(keys.subClients)
  await healed
  t.equal(open.index.stale, false, 'an open persistence loads the index once the snapshot succeeds')
  open.close()
  redis.disconnect()
})
