import t from 'tap'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess, stopAll, type NodeProcess } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { adminClient } from '../helpers/admin.ts'
import { waitFor } from '../helpers/wait.ts'

// Any node answers for the whole cluster: requests go to node A about state held by node B.
const BIN = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))
const redis = await startRedis()
const cli = (...args: string[]) => spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { encoding: 'utf8', env: { ...process.env, THINGMESH_NEW_PASSWORD: 'admin-secret-1' } })

// Bootstrapping the first admin straight into Redis, before any node runs.
const added = cli('users', 'add', 'admin', '--role', 'admin', '--redis', redis.url, '--json')
t.equal(added.status, 0, added.stderr)
const nodes: NodeProcess[] = []
for (const nodeId of ['a', 'b']) nodes.push(await startNodeProcess({ redis: redis.url, nodeId, anonymous: false }))
const [a, b] = nodes
const admin = await adminClient(a.port)
t.teardown(async () => { await admin.close(); await stopAll(nodes); await redis.stop() })

t.test('a cluster node refuses anonymous clients by default', async (t) => {
  await t.rejects(connect(b.port, { clientId: 'anon' }), /Not authorized/)
})

t.test('cluster/status lists both nodes with their load', async (t) => {
  await waitFor(async () => ((await admin.call('cluster/status')) as { nodes: unknown[] }).nodes.length === 2, 'two nodes')
  const s = await admin.call('cluster/status') as { mode: string, answeredBy: string, nodes: Array<{ nodeId: string, load: Record<string, number> }> }
  t.equal(s.mode, 'cluster')
  t.equal(s.answeredBy, 'a')
  t.same(s.nodes.map((n) => n.nodeId), ['a', 'b'])
  t.ok(s.nodes.every((n) => typeof n.load.connections === 'number'))
})

t.test('users made on A log in on B', async (t) => {
  await admin.call('users/put', { username: 'app1', role: 'app', password: 'app1-password' })
  const c = await connect(b.port, { clientId: 'app1-on-b', username: 'app1', password: 'app1-password' })
  await close(c)
  // Deleted on A: refused on B at once (the cached login on B is keyed by the stored hash).
  await admin.call('users/delete', { username: 'app1' })
  await t.rejects(connect(b.port, { clientId: 'app1-on-b', username: 'app1', password: 'app1-password' }), /Bad username or password/)
})

t.test('clients/list and clients/kick of a client connected to B, asked on A', async (t) => {
  await admin.call('users/put', { username: 'app2', role: 'app', password: 'app2-password' })
  const c = await connect(b.port, { clientId: 'held-by-b', username: 'app2', password: 'app2-password' })
  const listed = await admin.call('clients/list', { nodeId: 'b' }) as Array<{ clientId: string, nodeId: string }>
  t.ok(listed.some((x) => x.clientId === 'held-by-b' && x.nodeId === 'b'))
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
  t.match(await admin.call('clients/kick', { clientId: 'held-by-b' }), { nodeId: 'b', confirmed: true })
  await closed
  t.match(await admin.request('clients/kick', { clientId: 'held-by-b' }), { ok: false, error: { code: 'ADMIN_NOT_FOUND' } })
})

t.test('sessions/delete of a session held by B, asked on A', async (t) => {
  const c = await connect(b.port, { clientId: 'persist-b', clean: false, username: 'app2', password: 'app2-password' })
  await c.subscribeAsync('x/y', { qos: 1 })
  t.match(await admin.request('sessions/delete', { clientId: 'persist-b' }), { ok: false, error: { code: 'ADMIN_SESSION_CONNECTED' } })
  await c.endAsync()
  await waitFor(async () => ((await admin.call('sessions/list')) as Array<{ clientId: string, connected: boolean, subscriptions: number }>)
    .some((s) => s.clientId === 'persist-b' && !s.connected && s.subscriptions === 1), 'session listed')
  t.match(await admin.call('sessions/delete', { clientId: 'persist-b' }), { deleted: true })
  const again = await connect(a.port, { clientId: 'persist-b', clean: false, username: 'app2', password: 'app2-password' })
  t.equal(again.connected, true)
  t.same(((await admin.call('sessions/list')) as Array<{ clientId: string, subscriptions: number }>).find((s) => s.clientId === 'persist-b')?.subscriptions, 0, 'subscriptions gone')
  await close(again)
})

t.test('retained published on B, listed and deleted on A', async (t) => {
  const c = await connect(b.port, { clientId: 'ret-b', username: 'app2', password: 'app2-password' })
  await c.publishAsync('site/1/mode', 'auto', { qos: 1, retain: true })
  await close(c)
  t.match(await admin.call('retained/list', { filter: 'site/#' }), [{ topic: 'site/1/mode', payload: 'auto' }])
  t.match(await admin.call('retained/delete', { topic: 'site/1/mode' }), { deleted: true })
  t.same(await admin.call('retained/list', { filter: 'site/#' }), [])
})

t.test('audit written on A is read on B; the CLI reads it too', async (t) => {
  const onB = await adminClient(b.port, 'admin', 'admin-secret-1', 'admin-on-b')
  const audit = await onB.call('audit/list') as Array<{ op: string, nodeId: string, username: string }>
  await onB.close()
  t.ok(audit.some((r) => r.op === 'clients/kick' && r.nodeId === 'a' && r.username === 'admin'))
  const env = { ...process.env, THINGMESH_ADMIN_USERNAME: 'admin', THINGMESH_ADMIN_PASSWORD: 'admin-secret-1' }
  const run = (...args: string[]) => spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { encoding: 'utf8', env })
  const table = run('admin', 'audit/list', '--limit', '3', '--url', `mqtt://127.0.0.1:${b.port}`)
  t.equal(table.status, 0, table.stderr)
  t.match(table.stdout, /^V\s+TS\s+USERNAME\s+CLIENTID\s+NODEID\s+OP/m, 'a table by default')
  const json = run('admin', 'users/list', '--json', '--url', `mqtt://127.0.0.1:${b.port}`)
  t.match(JSON.parse(json.stdout), { v: 1, ok: true })
  const bad = run('admin', 'clients/kick', '{"clientId":"nobody"}', '--url', `mqtt://127.0.0.1:${b.port}`)
  t.equal(bad.status, 1)
  t.match(bad.stderr, /ADMIN_NOT_FOUND/)
  const users = run('users', 'list', '--url', `mqtt://127.0.0.1:${a.port}`)
  t.equal(users.status, 0, users.stderr)
  t.match(users.stdout, /admin\s+admin/)
})
