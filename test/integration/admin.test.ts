import t from 'tap'
import { startNodeProcess } from '../helpers/node.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { adminClient, ADMIN_ARGS, subackCodes } from '../helpers/admin.ts'
import { waitFor } from '../helpers/wait.ts'

// Admin request/reply over $admin topics on a standalone node (in-memory state).
const node = await startNodeProcess({ anonymous: false, args: ADMIN_ARGS })
const admin = await adminClient(node.port, 'admin', 'admin-secret-1', 'root-admin')
t.teardown(async () => { await admin.close(); await node.kill() })

t.test('cluster/status answers with this node, its load and the engine status', async (t) => {
  const r = await admin.call('cluster/status') as { mode: string, nodes: Array<{ nodeId: string, load: { connections: number } }>, engine: unknown }
  t.equal(r.mode, 'standalone')
  t.equal(r.nodes.length, 1)
  t.ok(r.nodes[0].load.connections >= 1)
})

t.test('errors: unknown operation, malformed JSON, bad arguments, wrong version', async (t) => {
  t.match(await admin.request('nope/nothing'), { v: 1, ok: false, error: { code: 'ADMIN_UNKNOWN_OPERATION' } })
  t.match(await admin.request('clients/kick', { clientId: 5 }), { ok: false, error: { code: 'ADMIN_INVALID_ARGUMENTS' } })
  t.match(await admin.request('clients/list', { limit: 10, bogus: true }), { ok: false, error: { code: 'ADMIN_INVALID_ARGUMENTS' } })
  const replies: string[] = []
  admin.mqtt.on('message', (_t, p) => replies.push(p.toString()))
  await admin.mqtt.publishAsync('$admin/cluster/status', '{not json', { qos: 1 })
  await admin.mqtt.publishAsync('$admin/cluster/status', JSON.stringify({ v: 2, id: 'x' }), { qos: 1 })
  await waitFor(() => replies.length >= 2, 'two replies')
  t.match(JSON.parse(replies[0]), { v: 1, id: null, ok: false, error: { code: 'ADMIN_MALFORMED_REQUEST' } })
  t.match(JSON.parse(replies[1]), { v: 1, id: 'x', ok: false, error: { code: 'ADMIN_MALFORMED_REQUEST' } })
})

t.test('requests are neither routed nor retained', async (t) => {
  const other = await adminClient(node.port, 'admin', 'admin-secret-1', 'other-admin')
  const watcher = await connect(node.port, { clientId: 'watcher', username: 'admin', password: 'admin-secret-1' })
  const got = collect(watcher)
  await watcher.subscribeAsync(['#', '$SYS/#'], { qos: 1 })
  const seen: string[] = []
  other.mqtt.on('message', (topic) => seen.push(topic))
  await admin.mqtt.publishAsync('$admin/cluster/status', JSON.stringify({ id: 'retained-req' }), { qos: 1, retain: true })
  // A retained request would show in retained/list; a routed one in `got` or on the other admin.
  const retained = await admin.call('retained/list', { filter: '#' }) as unknown[]
  t.same(retained.filter((r) => JSON.stringify(r).includes('$admin')), [])
  await admin.call('cluster/status')
  t.same(got.filter((m) => m.topic.startsWith('$admin')), [])
  t.same(seen, [], 'another admin sees no request and no reply of someone else')
  await close(watcher); await other.close()
})

t.test('users: put, list, login, role change, delete; the last admin stays', async (t) => {
  t.match(await admin.call('users/put', { username: 'app1', role: 'app', password: 'app1-password' }), { username: 'app1', role: 'app', created: true })
  const list = await admin.call('users/list') as Array<Record<string, unknown>>
  t.same(list.map((u) => u.username), ['admin', 'app1'])
  t.notOk(JSON.stringify(list).includes('scrypt'), 'hashes are never returned')
  const app = await connect(node.port, { clientId: 'app1-c', username: 'app1', password: 'app1-password' })
  await close(app)
  t.match(await admin.request('users/put', { username: 'new', role: 'app' }), { ok: false, error: { code: 'AUTH_INVALID_USER' } })
  t.match(await admin.request('users/put', { username: 'a/b', role: 'app', password: 'xxxxxxxx' }), { ok: false, error: { code: 'ADMIN_INVALID_ARGUMENTS' } })
  t.match(await admin.request('users/delete', { username: 'admin' }), { ok: false, error: { code: 'ADMIN_LAST_ADMIN' } })
  t.match(await admin.request('users/put', { username: 'admin', role: 'app' }), { ok: false, error: { code: 'ADMIN_LAST_ADMIN' } })
  // Changing the password invalidates the cached login at once.
  await admin.call('users/put', { username: 'app1', role: 'app', password: 'app1-password-2' })
  await t.rejects(connect(node.port, { clientId: 'app1-c', username: 'app1', password: 'app1-password' }), /Bad username or password/)
  t.match(await admin.call('users/delete', { username: 'app1' }), { deleted: true })
  t.match(await admin.request('users/delete', { username: 'app1' }), { ok: false, error: { code: 'ADMIN_NOT_FOUND' } })
})

t.test('clients/list and clients/kick', async (t) => {
  await admin.call('users/put', { username: 'app2', role: 'app', password: 'app2-password' })
  const c = await connect(node.port, { clientId: 'kick-me', username: 'app2', password: 'app2-password' })
  const list = await admin.call('clients/list') as Array<{ clientId: string }>
  t.ok(list.some((x) => x.clientId === 'kick-me'))
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
  t.match(await admin.call('clients/kick', { clientId: 'kick-me' }), { clientId: 'kick-me', confirmed: true })
  await closed
  t.match(await admin.request('clients/kick', { clientId: 'kick-me' }), { ok: false, error: { code: 'ADMIN_NOT_FOUND' } })
  t.same(await admin.call('clients/list', { limit: 1, after: '~' }), [], 'paging past the last id')
})

t.test('sessions/list and sessions/delete', async (t) => {
  const c = await connect(node.port, { clientId: 'persist-1', clean: false, username: 'app2', password: 'app2-password' })
  await c.subscribeAsync('a/b', { qos: 1 })
  t.match(await admin.request('sessions/delete', { clientId: 'persist-1' }), { ok: false, error: { code: 'ADMIN_SESSION_CONNECTED' } })
  await c.endAsync()
  await waitFor(async () => ((await admin.call('sessions/list')) as Array<{ clientId: string, connected: boolean }>).some((s) => s.clientId === 'persist-1' && !s.connected), 'session listed as disconnected')
  t.match(await admin.call('sessions/delete', { clientId: 'persist-1' }), { deleted: true })
  const again = await connect(node.port, { clientId: 'persist-1', clean: false, username: 'app2', password: 'app2-password' })
  t.equal((again as unknown as { connackPacket?: { sessionPresent: boolean } }).connackPacket?.sessionPresent ?? false, false, 'no session present after delete')
  await close(again)
})

t.test('retained/list and retained/delete', async (t) => {
  const c = await connect(node.port, { clientId: 'ret-pub', username: 'app2', password: 'app2-password' })
  await c.publishAsync('plant/line1/temp', '21.5', { qos: 1, retain: true })
  await close(c)
  const list = await admin.call('retained/list', { filter: 'plant/#' }) as Array<{ topic: string, payload: string }>
  t.same(list.map((r) => [r.topic, r.payload]), [['plant/line1/temp', '21.5']])
  t.match(await admin.call('retained/delete', { topic: 'plant/line1/temp' }), { deleted: true })
  t.same(await admin.call('retained/list', { filter: 'plant/#' }), [])
  t.match(await admin.request('retained/delete', { topic: 'plant/line1/temp' }), { ok: false, error: { code: 'ADMIN_NOT_FOUND' } })
  t.match(await admin.request('retained/list', { filter: 'a/#/b' }), { ok: false, error: { code: 'ADMIN_INVALID_ARGUMENTS' } })
})

t.test('engine operations reach the engine (or say it is absent)', async (t) => {
  const r = await admin.request('templates/list')
  if (r.ok) t.ok(Array.isArray(r.result), 'templates/list returns a list')
  else t.equal(r.error.code, 'ADMIN_ENGINE_UNAVAILABLE')
  const g = await admin.request('things/get', { id: 'no-such-thing' })
  t.equal(g.ok, false)
  if (!g.ok) t.match(g.error.code, /^(ADMIN_NOT_FOUND|ADMIN_ENGINE_UNAVAILABLE|ENGINE_UNKNOWN_THING)$/)
})

t.test('audit/list has every change: who, what, when; secrets masked', async (t) => {
  const audit = await admin.call('audit/list', { limit: 1000 }) as Array<{ username: string, op: string, ts: number, ok: boolean, args: Record<string, unknown> }>
  t.ok(audit.length >= 5)
  t.ok(audit.every((a) => a.username === 'admin' && typeof a.ts === 'number'))
  const put = audit.find((a) => a.op === 'users/put' && a.ok)!
  t.equal(put.args.password, '***')
  t.notOk(JSON.stringify(audit).includes('app1-password'), 'no password in the audit')
  t.ok(audit.some((a) => a.op === 'users/delete' && !a.ok), 'refused changes are audited too')
  t.ok(audit.every((a) => !a.op.endsWith('/list')), 'reads are not audited')
  const byOp = await admin.call('audit/list', { op: 'clients/kick' }) as unknown[]
  t.ok(byOp.length >= 1)
})

t.test('non-admins cannot use $admin', async (t) => {
  const app = await connect(node.port, { clientId: 'app-x', username: 'app2', password: 'app2-password' })
  t.same(await subackCodes(app, ['$admin/reply/app-x', '$admin/#']), [128, 128])
  const closed = new Promise<void>((resolve) => app.once('close', () => resolve()))
  app.publish('$admin/users/list', JSON.stringify({ id: 1 }), { qos: 0 })
  await closed
  t.pass('publishing to $admin disconnected the app')
  // An admin may read only its own reply topic.
  t.same(await subackCodes(admin.mqtt, ['$admin/reply/other-admin', '$admin/#']), [128, 128])
})
