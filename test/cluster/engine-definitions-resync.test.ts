import t from 'tap'
import type { AdminClient } from '../../broker/admin/index.ts'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { createLogger } from '../../broker/log.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { DefinitionsSync } from '../../engine/runtime/definitions-sync.ts'
import { ADMIN_ARGS, adminClient } from '../helpers/admin.ts'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, stopAll } from '../helpers/node.ts'
import { waitFor } from '../helpers/wait.ts'

// Chaos row R11: definitions across a Redis failover. Notices on the engine
// channel are lost while a link is down, and an asynchronously replicated
// primary can come back without the newest versions (or reuse their
// numbers). Nodes re-read the log head after a reconnect and every 2 s:
// they catch up without a new update, adopt Redis's definitions when Redis
// is behind (with an ENGINE_DEFINITIONS_LOST warning), and keep accepting puts.

const redis = await startRedis()
const nodes = await startCluster(redis.url, 3, ADMIN_ARGS)
const admins: AdminClient[] = await Promise.all(nodes.map((n) => adminClient(n.port)))
const r = redis.client()
t.teardown(async () => {
  await Promise.allSettled(admins.map((a) => a.close()))
  await stopAll(nodes)
  await redis.stop()
})
const K = 'tm:{thingmesh}:eng:'

interface Report { version: number, appliedBy: string[], missing: string[] }
const versions = (): Promise<number[]> => Promise.all(admins.map(async (a) => ((await a.call('cluster/status')) as { engine: { version: number } }).engine.version))
const template = (id: string, description = ''): object => ({ id, description, properties: { level: { type: 'number' } } })
const lostWarnings = (i: number): Array<{ code: string, had: number, now: number, nowId: string, changed: { templates: string[], things: string[] } }> =>
  nodes[i]!.log().split('\n').filter((l) => l.includes('"engine.definitions_lost"')).map((l) => JSON.parse(l))
/** Writes version `v` straight into Redis, as a writer whose notice was lost (or a failover) leaves it. */
const writeVersion = async (v: number, changes: unknown[], id: string): Promise<void> => {
  await r.multi().hset(K + 'defs:log', String(v), JSON.stringify(changes), 'id:' + v, id).set(K + 'defs:version', String(v)).exec()
}

t.test('a version whose notice was lost reaches every node without a new update', async (t) => {
  const first = await admins[0]!.call('templates/put', template('Tank')) as Report
  t.equal(first.version, 1)
  t.equal(first.appliedBy.length, 3, 'confirmed by the 3 nodes')
  t.same(first.missing, [])

  // No notice at all for version 2, and no reconnect: only the periodic check (2 s) can find it.
  await writeVersion(2, [{ op: 'putThing', thing: { id: 'tank-1', template: 'Tank' } }], 'no-notice')
  const started = Date.now()
  await waitFor(async () => (await versions()).every((v) => v === 2), 'every node on version 2', 8000, 100)
  const ms = Date.now() - started
  t.pass(`every node on version 2 after ${ms} ms (checked every 2000 ms; bound 8000 ms), no update sent`)
})

t.test('a reconnect of the subscriber alone re-reads the log head', async (t) => {
  // In process, with the periodic check off, so only the reconnect can bring it.
  const cmd = redis.client()
  const sub = redis.client()
  defineScripts(cmd, ENGINE_LUA_DIR)
  await Promise.all([cmd, sub].map((c) => c.status === 'ready' ? undefined : new Promise((resolve) => c.once('ready', resolve))))
  const store = new RedisStore({ cmd, reader: cmd, sub, keys: createKeys('thingmesh').engine, partitions: 64, backlogMax: 1, historyMax: 1, historyMaxAgeMs: 0, leaseMs: 1 })
  await store.subscribe()
  const sync = new DefinitionsSync({ store, brokerId: 'probe', observer: true, resyncMs: 0, log: createLogger('silent'), liveNodes: () => [], rolloutTimeoutMs: 100, onChange: () => {} })
  await sync.catchUp()
  t.equal(sync.defs.version, 2)

  await writeVersion(3, [{ op: 'putThing', thing: { id: 'tank-2', template: 'Tank' } }], 'no-notice-3')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(sync.defs.version, 2, 'no notice, no periodic check: still on version 2')
  await r.client('KILL', 'TYPE', 'pubsub')
  const started = Date.now()
  await waitFor(() => sync.defs.version === 3, 'the probe on version 3 after its subscriber reconnected', 5000)
  t.pass(`the probe on version 3 ${Date.now() - started} ms after CLIENT KILL TYPE pubsub`)
  t.ok(sync.defs.things.has('tank-2'))
  sync.stop()
  await store.close()
  await waitFor(async () => (await versions()).every((v) => v === 3), 'every node on version 3', 8000, 100)
})

t.test('Redis behind the nodes (a failover lost a version): nodes adopt Redis\'s, warn, and accept the next put', async (t) => {
  const put = await admins[0]!.call('templates/put', template('Pump')) as Report
  t.equal(put.version, 4)
  t.equal(put.appliedBy.length, 3)

  // What the new primary of an asynchronous failover may hold: version 3, without 4.
  await r.multi().set(K + 'defs:version', '3').hdel(K + 'defs:log', '4', 'id:4').exec()
  await waitFor(async () => (await versions()).every((v) => v === 3), 'every node back on version 3', 8000, 100)
  for (let i = 0; i < nodes.length; i++) {
    const w = lostWarnings(i)
    t.equal(w.length, 1, `node${i + 1} logged the loss once`)
    t.match(w[0], { code: 'ENGINE_DEFINITIONS_LOST', had: 4, now: 3, changed: { templates: ['Pump'] } }, `node${i + 1} names what was lost`)
  }

  // The put that used to be refused with ENGINE_VERSION_CONFLICT, through the node that ran version 4.
  const again = await admins[0]!.call('templates/put', template('Pump', 'again')) as Report
  t.equal(again.version, 4, 'accepted as version 4')
  t.equal(again.appliedBy.length, 3, 'confirmed by the 3 nodes')
  t.same(again.missing, [])
})

t.test('a version number reused by another write: nodes reload it', async (t) => {
  // Version 4 now names another write than the one the nodes applied.
  await writeVersion(4, [{ op: 'putTemplate', template: template('Valve') }], 'other-history')
  await waitFor(() => nodes.every((_, i) => lostWarnings(i).length === 2), 'a second warning on every node', 8000, 100)
  for (let i = 0; i < nodes.length; i++) {
    t.match(lostWarnings(i)[1], { code: 'ENGINE_DEFINITIONS_LOST', had: 4, now: 4, nowId: 'other-history', changed: { templates: ['Pump', 'Valve'] } }, `node${i + 1} reloaded the other version 4`)
  }
  const next = await admins[1]!.call('things/put', { id: 'valve-1', template: 'Valve' }) as Report
  t.equal(next.version, 5, 'a thing of the template only the new version 4 has is accepted')
  t.equal(next.appliedBy.length, 3)
  t.same(await versions(), [5, 5, 5])
})

t.test('a node recorded on a version number with another write id is not counted as having applied it', async (t) => {
  const cmd = redis.client()
  const sub = redis.client()
  defineScripts(cmd, ENGINE_LUA_DIR)
  const store = new RedisStore({ cmd, reader: cmd, sub, keys: createKeys('thingmesh').engine, partitions: 64, backlogMax: 1, historyMax: 1, historyMaxAgeMs: 0, leaseMs: 1 })
  const sync = new DefinitionsSync({ store, brokerId: 'probe', observer: true, log: createLogger('silent'), liveNodes: () => ['ghost'], rolloutTimeoutMs: 200, onChange: () => {} })
  const version = Number(await r.get(K + 'defs:version'))
  const id = await r.hget(K + 'defs:log', 'id:' + version)
  t.ok(id !== null && id.length > 0, `version ${version} has a write id`)
  // What a node that ran a version a failover lost leaves behind: the same number, its own id.
  await r.hset(K + 'defs:applied', 'ghost', String(version), 'ghost#id', 'lost-write')
  t.same(await sync.waitRollout(version, 200, id!), { version, appliedBy: [], missing: ['ghost'] }, 'missing while it runs the lost write')
  await r.hset(K + 'defs:applied', 'ghost#id', id!)
  t.same(await sync.waitRollout(version, 200, id!), { version, appliedBy: ['ghost'], missing: [] }, 'applied once it runs the stored one')
  t.same((await store.defsApplied()).has('ghost#id'), false, 'the id fields are not listed as nodes')
  await r.hdel(K + 'defs:applied', 'ghost', 'ghost#id')
  await store.close()
})
