import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createKeys } from '../../broker/cluster/keys.ts'
import { defineScripts } from '../../broker/cluster/redis.ts'
import { createLogger } from '../../broker/log.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { DefinitionsSync } from '../../engine/runtime/definitions-sync.ts'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, startNodeProcess, stopAll } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Issue 4: definitions are cluster-wide and confirmed. A change is stored as
// one version, every live node applies it and says so; a node started later
// catches up before it takes partitions; a module is applied all-or-nothing.

const BIN = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'tm-engine-defs-'))
const file = (name: string, body: unknown): string => { const p = join(dir, name); writeFileSync(p, JSON.stringify(body)); return p }

const sensor = { id: 'Sensor', properties: { temp: { type: 'number', min: -50, max: 150 } } }
const good = file('good.json', { version: 1, templates: [sensor], things: [{ id: 'a1', template: 'Sensor' }, { id: 'a2', template: 'Sensor' }] })
const more = file('more.json', { version: 1, things: [{ id: 'b1', template: 'Sensor' }] })
// One valid thing and one broken one: nothing of it may be applied.
const bad = file('bad.json', { version: 1, things: [{ id: 'c1', template: 'Sensor' }, { id: 'c2', template: 'Missing' }], rules: [{ id: 'r', template: 'Sensor', when: 'temp >', actions: [] }] })

const redis = await startRedis()
const nodes = await startCluster(redis.url, 3)
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const r = redis.client()
const K = 'tm:{thingmesh}:eng:'

function cli (...args: string[]): { code: number | null, out: string } {
  const res = spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { code: res.status, out: res.stdout + res.stderr }
}

t.test('import applies one version, confirmed by every live node', async (t) => {
  const res = cli('import', good, '--redis', redis.url)
  t.equal(res.code, 0, res.out)
  t.match(res.out, /version 1 applied by 3 node\(s\)/)
  const applied = await r.hgetall(K + 'defs:applied')
  const ids = await Promise.all(nodes.map(async (n) => (await n.health()).body.brokerId as string))
  for (const id of ids) t.equal(applied[id], '1', `${id} runs version 1`)

  const res2 = cli('import', more, '--redis', redis.url)
  t.equal(res2.code, 0, res2.out)
  t.match(res2.out, /version 2 applied by 3 node\(s\)/)
})

t.test('a bad module changes nothing and every problem is printed with its path', async (t) => {
  const dry = cli('import', bad, '--redis', redis.url, '--dry-run')
  t.equal(dry.code, 1)
  t.match(dry.out, /things\[1\]\.template: unknown template "Missing"/)
  t.match(dry.out, /rules\[0\]\.when/)
  const res = cli('import', bad, '--redis', redis.url)
  t.equal(res.code, 1, 'refused')
  t.equal(await r.get(K + 'defs:version'), '2', 'version unchanged')
  t.equal(cli('import', bad).code, 1, 'without --redis it only validates, and finds the problems too')

  // c1 (valid on its own) must not exist: a write to it is refused.
  const c = await connect(nodes[0]!.port, { clientId: 'probe' })
  const got = collect(c)
  await c.subscribeAsync('things/c1/errors', { qos: 1 })
  await c.publishAsync('things/c1/properties/temp', '20', { qos: 1 })
  await waitFor(() => got.length > 0, 'error for c1')
  t.match(JSON.parse(got[0]!.payload), { code: 'ENGINE_UNKNOWN_THING' })
  await close(c)
})

t.test('a node started later catches up before it takes partitions, and gets its share', async (t) => {
  const late = await startNodeProcess({ redis: redis.url, nodeId: 'node4' })
  nodes.push(late)
  const id = (await late.health()).body.brokerId as string
  // Healthy means started, and the engine starts only after catching up.
  t.equal(await r.hget(K + 'defs:applied', id), '2', 'the new node runs the current version')
  await waitFor(async () => {
    const flat = await r.hgetall(K + 'leases')
    return Object.values(flat).filter((v) => v.startsWith(id + '|')).length === 16
  }, 'the new node owns 16 of 64 partitions', 10_000, 50)
  t.pass('rebalanced to 16 each')

  // The thing added at version 2 works through the new node.
  const c = await connect(late.port, { clientId: 'probe4' })
  const got = collect(c)
  await c.subscribeAsync('things/b1/state', { qos: 1 })
  await c.publishAsync('things/b1/properties/temp', '21.5', { qos: 1 })
  await waitFor(() => got.some((m) => (JSON.parse(m.payload) as { properties: { temp?: { value: number } } }).properties.temp?.value === 21.5), 'b1 state')
  t.pass('b1 applied')
  await close(c)
})

t.test('a scheduled rule runs once per period in the whole cluster', async (t) => {
  const res = cli('import', file('sched.json', { version: 1, rules: [{ id: 'tick', thing: 'a1', when: 'true', trigger: 'level', everySeconds: 1, actions: [{ type: 'emitEvent', event: 'tick' }] }] }), '--redis', redis.url)
  t.equal(res.code, 0, res.out)
  const c = await connect(nodes[0]!.port, { clientId: 'sched-watch' })
  const got = collect(c)
  await c.subscribeAsync('things/a1/events/tick', { qos: 1 })
  await waitFor(() => got.length >= 3, 'three ticks', 10_000)
  const ts = got.map((m) => (JSON.parse(m.payload) as { ts: number }).ts)
  t.ok(ts.every((v, i) => i === 0 || v - (ts[i - 1] as number) >= 1000), `one evaluation per second across ${nodes.length} nodes (${ts.join(', ')})`)
  await close(c)
})

t.test('a node that does not confirm in time is reported missing', async (t) => {
  // In process, so the live set is known exactly: node2 is paused (alive by
  // membership a little longer, but it cannot apply anything).
  const cmd = redis.client()
  const sub = redis.client()
  defineScripts(cmd, ENGINE_LUA_DIR)
  const store = new RedisStore({ cmd, reader: cmd, sub, keys: createKeys('thingmesh').engine, partitions: 64, backlogMax: 1, historyMax: 1, historyMaxAgeMs: 0, leaseMs: 1 })
  await store.subscribe()
  const ids = await Promise.all(nodes.map(async (n) => (await n.health()).body.brokerId as string))
  const sync = new DefinitionsSync({ store, brokerId: 'test', observer: true, log: createLogger('silent'), liveNodes: () => ids, rolloutTimeoutMs: 1000, onChange: () => {} })
  const victim = nodes[1]!
  victim.proc.kill('SIGSTOP')
  try {
    const before = Number(await r.get(K + 'defs:version'))
    const started = Date.now()
    const report = await sync.change([{ op: 'putThing', thing: { id: 'd1', template: 'Sensor' } }])
    t.equal(report.version, before + 1)
    t.same(report.missing, [ids[1]], 'the paused node is missing')
    t.same([...report.appliedBy].sort(), ids.filter((_, i) => i !== 1).sort(), 'the others confirmed')
    t.ok(Date.now() - started >= 1000, 'waited for the timeout')
  } finally {
    victim.proc.kill('SIGCONT')
  }
  const version = await r.get(K + 'defs:version')
  await waitFor(async () => (await r.hget(K + 'defs:applied', ids[1]!)) === version, 'the resumed node catches up', 10_000, 50)
  t.pass(`resumed node applied version ${version ?? '?'}`)
})
