import t from 'tap'
import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { createKeys, type Keys } from '../../broker/cluster/keys.ts'
import { SessionRegistry } from '../../broker/cluster/sessions.ts'
import { RedisPersistence } from '../../broker/persistence/redis-persistence.ts'
import type { SubscriptionChange } from '../../broker/persistence/subscription-index.ts'
import { startRedis } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'

// A CONNECT's session claim (broker/cluster/lua/claimSessions-7.lua) also
// does the session work aedes asks the persistence for later in the CONNECT
// (issue 8: one round trip instead of five). These pin down what it writes,
// and that the persistence answers aedes' calls without Redis only for the
// connection whose claim did the work.

t.setTimeout(60_000)

const r = await startRedis()
t.teardown(() => r.stop())

const LIVE = 'n1~live'
const OTHER = 'n2~other'

interface Setup { redis: Redis, keys: Keys, sessions: SessionRegistry, persistence: RedisPersistence, notices: Array<{ t: string } & Record<string, unknown>> }

/** A node's view: its registry and persistence on one connection, the control channel applied to the index. */
async function setup (cluster: string): Promise<Setup> {
  const redis = r.client()
  const sub = r.client()
  const keys = createKeys(cluster)
  defineScripts(redis, new URL('../../broker/cluster/lua/', import.meta.url))
  const persistence = new RedisPersistence({ redis, keys, maxQueuedMessages: 100, mayStore: () => true })
  const notices: Setup['notices'] = []
  await sub.subscribe(keys.controlChannel)
  sub.on('message', (_channel: string, message: string) => {
    const n = JSON.parse(message) as { t: string }
    notices.push(n)
    if (n.t === 'subs') persistence.onSubscriptionChange(n as unknown as SubscriptionChange)
  })
  await persistence.setup(Object.assign(new EventEmitter(), { id: LIVE }))
  t.teardown(() => { persistence.close(); redis.disconnect(); sub.disconnect() })
  return { redis, keys, sessions: new SessionRegistry(redis, keys, LIVE), persistence, notices }
}

const will = (payload: string): Parameters<RedisPersistence['putWill']>[1] =>
  ({ cmd: 'publish', topic: 'w/c', payload: Buffer.from(payload), qos: 1, retain: false, dup: false, brokerId: '', brokerCounter: 0 })

/** A session left behind: stored subscription, queue, in-flight and inbound QoS 2 state, a will held by another node, an expiry entry. */
async function leaveSession (s: Setup, id: string): Promise<void> {
  await s.persistence.addSubscriptions({ id }, [{ topic: `cs/${id}/#`, qos: 1 }])
  await s.redis.rpush(s.keys.queueOf(id), 'b:1')
  await s.redis.hset(s.keys.queuedPacketsOf(id), 'b:1', 'frame')
  await s.redis.hset(s.keys.inflightOf(id), '1', 'b:1')
  await s.redis.hset(s.keys.incomingOf(id), '7', 'frame')
  const other = new RedisPersistence({ redis: s.redis, keys: s.keys, maxQueuedMessages: 100, mayStore: () => true })
  await other.setup(Object.assign(new EventEmitter(), { id: OTHER }))
  await other.putWill({ id }, will('old'))
  other.close()
  await s.redis.zadd(s.keys.sessions, Date.now(), id)
}

t.test('a clean claim discards the previous session and its will, and announces the discarded subscriptions', async (t) => {
  const s = await setup('cs-clean')
  const id = 'c-clean'
  await leaveSession(s, id)
  t.equal(s.persistence.index.match(`cs/${id}/x`).length, 1, 'the stored subscription is in the index')
  const ver = Number(await s.redis.get(s.keys.subVersion))

  const claim = await s.sessions.claim(id, false)
  t.equal(claim.subsVersion, ver + 1, 'the discarded subscriptions are one index version')
  t.equal(await s.redis.exists(s.keys.subsOf(id), s.keys.queueOf(id), s.keys.queuedPacketsOf(id), s.keys.inflightOf(id), s.keys.incomingOf(id)), 0, 'subscriptions, queue, in-flight and inbound QoS 2 state gone [MQTT-3.1.2-6]')
  t.equal(await s.redis.sismember(s.keys.subClients, id), 0)
  t.equal(await s.redis.hget(s.keys.wills, id), null, 'the earlier will is void')
  t.same(await s.redis.smembers(s.keys.willsOf(OTHER)), [], 'and no longer listed under the node that held it')
  t.equal(await s.redis.zscore(s.keys.sessions, id), null, 'not a session to expire')
  t.equal(await s.redis.hget(s.keys.owners, id), `${LIVE}|${claim.epoch}|up|0`)

  // aedes' cleanSubscriptions of this CONNECT resolves once the node's index applied the change.
  const client = { id, clean: true }
  s.persistence.claimedAtConnect(client, claim.subsVersion)
  await s.persistence.cleanSubscriptions(client)
  t.equal(s.persistence.index.match(`cs/${id}/x`).length, 0, 'the index no longer queues for the clean session')
  t.ok(s.notices.some((n) => n.t === 'subs' && n.op === 'clean' && n.c === id && n.ver === claim.subsVersion), 'the clean was announced')
})

t.test('a clean claim of an id without history changes no index version and announces only the takeover', async (t) => {
  const s = await setup('cs-fresh')
  const before = await s.redis.get(s.keys.subVersion)
  const claim = await s.sessions.claim('c-fresh', false)
  t.equal(claim.subsVersion, 0)
  t.equal(await s.redis.get(s.keys.subVersion), before, 'no index version drawn')
  await waitFor(() => s.notices.some((n) => n.t === 'takeover' && n.c === 'c-fresh'), 'the takeover notice')
  // A later change is announced after the claim's notice on the same channel: no subs notice came before it.
  await s.persistence.addSubscriptions({ id: 'c-marker' }, [{ topic: 'cs/marker', qos: 1 }])
  t.same(s.notices.filter((n) => n.t === 'subs').map((n) => n.c), ['c-marker'], 'no subscription change for the fresh id')
})

t.test('a persistent claim keeps the session and deletes only the earlier will', async (t) => {
  const s = await setup('cs-persistent')
  const id = 'c-persistent'
  await leaveSession(s, id)
  const claim = await s.sessions.claim(id, true)
  t.equal(claim.subsVersion, 0)
  t.same(Object.keys(await s.redis.hgetall(s.keys.subsOf(id))), [`cs/${id}/#`], 'subscriptions kept')
  t.same(await s.redis.lrange(s.keys.queueOf(id), 0, -1), ['b:1'], 'queue kept')
  t.equal(await s.redis.exists(s.keys.queuedPacketsOf(id), s.keys.inflightOf(id), s.keys.incomingOf(id)), 3, 'queued packets, in-flight and inbound QoS 2 state kept')
  t.equal(await s.redis.hget(s.keys.wills, id), null, 'the earlier will is void')
  t.equal(await s.redis.zscore(s.keys.sessions, id), null, 'back: not a session to expire')
  t.equal(await s.redis.hget(s.keys.owners, id), `${LIVE}|${claim.epoch}|up|1`)
})

t.test('after the claim, aedes\' CONNECT calls are answered without Redis, for that connection only', async (t) => {
  const s = await setup('cs-answered')
  const id = 'c-answered'
  const client = { id, clean: true }
  const claim = await s.sessions.claim(id, false)
  s.persistence.claimedAtConnect(client, claim.subsVersion)
  // Written after the claim: a call that went to Redis would delete them.
  await s.redis.hset(s.keys.incomingOf(id), '1', 'x')
  await s.persistence.putWill({ id }, will('new'))
  await s.persistence.cleanSubscriptions(client)
  t.equal(await s.persistence.delWill(client), undefined)
  t.equal((await s.persistence.getWill({ id }))?.payload.toString(), 'new', 'the CONNECT\'s delWill did not reach Redis')
  await s.persistence.cleanIncoming(client)
  t.equal(await s.redis.exists(s.keys.incomingOf(id)), 1, 'nor its cleanIncoming')
  // The CONNECT is over: the same calls go to Redis again (aedes' close-time ones, say).
  await s.persistence.cleanIncoming(client)
  t.equal(await s.redis.exists(s.keys.incomingOf(id)), 0, 'a later cleanIncoming deletes')
  t.equal((await s.persistence.delWill({ id, brokerId: LIVE } as { id: string }))?.payload.toString(), 'new', 'a close-time delWill takes the will')

  // aedes closed an older connection with this id when it registered the
  // new one, after the claim: what it stored meanwhile is wiped as before.
  const next = { id, clean: true }
  const older = { id, clean: false }
  s.persistence.claimedAtConnect(next, 0)
  await s.redis.hset(s.keys.incomingOf(id), '2', 'from the older connection')
  s.persistence.connectionClosed(older)
  await s.persistence.cleanSubscriptions(next)
  await s.persistence.delWill(next)
  await s.persistence.cleanIncoming(next)
  t.equal(await s.redis.exists(s.keys.incomingOf(id)), 0, 'the new connection\'s cleanIncoming went to Redis')

  // Another object with the same id (a second connection) is not answered by this claim.
  const mine = { id, clean: true }
  s.persistence.claimedAtConnect(mine, 0)
  await s.redis.hset(s.keys.incomingOf(id), '3', 'x')
  await s.persistence.cleanIncoming({ id })
  t.equal(await s.redis.exists(s.keys.incomingOf(id)), 0, 'a different connection\'s call went to Redis')
  s.persistence.connectionClosed(mine)
  await s.redis.hset(s.keys.incomingOf(id), '4', 'x')
  await s.persistence.cleanIncoming(mine)
  t.equal(await s.redis.exists(s.keys.incomingOf(id)), 0, 'after its close, nothing is answered from the claim')
})

t.test('the claims of one event-loop turn go in one script call, in order, each caller getting its own result', async (t) => {
  const s = await setup('cs-batch')
  const scripted = s.redis as unknown as { claimSessions(...a: string[]): Promise<unknown> }
  const run = scripted.claimSessions.bind(s.redis)
  const calls: string[][] = []
  scripted.claimSessions = (...a: string[]) => { calls.push(a); return run(...a) }
  await leaveSession(s, 'b-old')
  const [first, second, other, old] = await Promise.all([
    s.sessions.claim('b-same', false),
    s.sessions.claim('b-same', true),
    s.sessions.claim('b-other', false),
    s.sessions.claim('b-old', false),
  ])
  t.equal(calls.length, 1, 'one script call')
  t.equal(first.previous, null)
  t.same(second.previous, { brokerId: LIVE, epoch: first.epoch, released: false, persistent: false }, 'a later claim of the same id in the call replaces the earlier one')
  t.ok(first.epoch < second.epoch && second.epoch < other.epoch && other.epoch < old.epoch, 'epochs in call order')
  t.same([first.subsVersion, second.subsVersion, other.subsVersion], [0, 0, 0])
  t.ok(old.subsVersion > 0, 'only the id with stored subscriptions changed the index')
  t.equal(await s.redis.hget(s.keys.owners, 'b-same'), `${LIVE}|${second.epoch}|up|1`)
  t.equal(await s.redis.hget(s.keys.owners, 'b-other'), `${LIVE}|${other.epoch}|up|0`)
})
