import t from 'tap'
import { connect as tlsConnect } from 'node:tls'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { startNodeProcess } from '../helpers/node.ts'
import { close, collect, connect, type MqttClient } from '../helpers/mqtt.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'
import { adminClient, ADMIN_ARGS, subackCodes } from '../helpers/admin.ts'
import { makePki } from '../helpers/certs.ts'
import { freePort } from '../helpers/ports.ts'
import { waitFor } from '../helpers/wait.ts'

// Authentication [S3], ACLs and their escapes [S4], TLS [S9] and WebSocket [S8].
const pki = makePki()
const devCert = pki.client('devA')
const tlsPort = await freePort()
const wsPort = await freePort()
const node = await startNodeProcess({
  anonymous: false,
  args: [...ADMIN_ARGS, '--auth-failures-per-minute', '1000',
    '--tls-port', String(tlsPort), '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.caCert,
    '--ws-port', String(wsPort), '--ws-origins', 'http://good.example', '--ws-max-payload', '65536'],
})
const admin = await adminClient(node.port)
for (const [username, role] of [['appA', 'app'], ['devA', 'device'], ['devB', 'device']]) {
  await admin.call('users/put', { username, role, password: `${username}-password` })
}
t.teardown(async () => { await admin.close(); await node.kill(); pki.cleanup() })

const login = (clientId: string, username: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> =>
  connect(node.port, { clientId, username, password: username === 'admin' ? 'admin-secret-1' : `${username}-password`, ...extra })
const refusal = async (p: Promise<unknown>): Promise<number> => {
  try { await p } catch (err) { return (err as { code?: number }).code ?? -1 }
  return 0
}

t.test('S3: authentication failures are refused with the right CONNACK', async (t) => {
  t.equal(await refusal(connect(node.port, { clientId: 'x1' })), 5, 'no credentials: not authorized')
  t.equal(await refusal(connect(node.port, { clientId: 'x2', username: 'appA', password: 'wrong-password' })), 4, 'wrong password')
  t.equal(await refusal(connect(node.port, { clientId: 'x3', username: 'nobody', password: 'whatever-pw' })), 4, 'unknown user')
  t.not(await refusal(connect(node.port, { clientId: 'x4', username: 'a'.repeat(65000), password: 'x' })), 0, '64 KiB user name (over the pre-CONNECT size limit: closed)')
  t.equal(await refusal(connect(node.port, { clientId: 'x5', username: 'appA' })), 4, 'user without password')
  t.equal(await refusal(connect(node.port, { clientId: 'x6', username: '\u0000', password: 'x' })), 4, 'NUL user name')
  t.equal(await refusal(login('$evil', 'appA')), 2, '$-prefixed client id')
  t.equal(await refusal(login('devB', 'devA')), 2, 'a device cannot use another device\'s client id')
  const ok = await login('devA:probe', 'devA')
  await close(ok)
  // A second CONNECT on an authenticated socket is a protocol violation [MQTT-3.1.0-2].
  const raw = await rawConnect(node.port)
  raw.send(connectPacket('appA-raw', { username: 'appA', password: Buffer.from('appA-password') }))
  t.equal((await raw.next('connack')).returnCode, 0)
  raw.send(connectPacket('appA-raw', { username: 'devA', password: Buffer.from('devA-password') }))
  await raw.closed
  t.pass('second CONNECT closed the connection')
})

t.test('S4: a device cannot escape its things/{id}/ subtree', async (t) => {
  // Raw packets: mqtt.js would refuse to send the invalid filters.
  const raw = await rawConnect(node.port)
  raw.send(connectPacket('devA', { username: 'devA', password: Buffer.from('devA-password') }))
  t.equal((await raw.next('connack')).returnCode, 0)
  const filters = ['#', '+/#', 'things/+/#', 'things/devB/#', '$SYS/#', '$admin/#', 'a#', 'things/devA\u0000/x', '$share/g/things/#', 'things/#', '+/devA/#', 'things/devA/#']
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos: 1 })) })
  t.same((await raw.next('suback')).granted, [...filters.slice(0, -1).map(() => 128), 1], 'every foreign or invalid filter gets 0x80')
  const gotA: Array<{ topic: string }> = []
  const devA = { publishAsync: async (topic: string, payload: string) => { raw.send({ cmd: 'publish', topic, payload, qos: 0 }) } }
  const received = (): Array<{ topic: string }> => { gotA.push(...raw.packets.splice(0).filter((p) => p.cmd === 'publish') as Array<{ topic: string }>); return gotA }
  const devB = await login('devB', 'devB')
  for (let i = 0; i < 1000; i++) devB.publish(`things/devB/properties/p${i % 10}`, String(i), { qos: i % 2 as 0 | 1, retain: i >= 900 })
  await devB.publishAsync('things/devB/properties/last', 'end', { qos: 1 })
  await devA.publishAsync('things/devA/properties/mark', 'own')
  await waitFor(() => received().some((m) => m.topic === 'things/devA/properties/mark'), 'devA sees its own topic')
  t.same(received().filter((m) => !m.topic.startsWith('things/devA/')).length, 0, '0 messages of devB reached devA')
  // A new subscription gets retained messages: none of devB's.
  const late = await login('devA:late', 'devA')
  const gotLate = collect(late)
  t.same(await subackCodes(late, ['things/devB/properties/#', 'things/devA/properties/#']), [128, 1])
  await late.publishAsync('things/devA/properties/mark2', 'x', { qos: 1 })
  await waitFor(() => gotLate.some((m) => m.topic.endsWith('mark2')), 'late subscriber ready')
  t.same(gotLate.filter((m) => !m.topic.startsWith('things/devA/')), [], '0 retained messages of devB')
  raw.socket.destroy()
  await close(devB, late)
})

t.test('S4: writes outside the ACL disconnect the writer only', async (t) => {
  const cases: Array<[string, string]> = [
    ['devA', 'things/devB/properties/x'], ['devA', 'things/devA/state'], ['devA', 'things/devA/alerts/high'],
    ['devA', 'things/devA/desired/x'], ['devA', 'other/topic'], ['appA', 'things/t1/state'], ['appA', 'things/t1/changed/p'],
    ['appA', '$SYS/broker/x'], ['appA', '$admin/users/list'], ['admin', '$SYS/x'], ['admin', '$admin/reply/root'],
  ]
  const bystander = await login('bystander', 'appA')
  for (const [user, topic] of cases) {
    const c = await login(user === 'devA' ? 'devA' : `${user}-w`, user)
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
    c.publish(topic, 'x', { qos: 1 })
    await closed
    t.pass(`${user} → ${topic} refused`)
  }
  t.ok(bystander.connected, 'another client is unaffected')
  const allowed = await login('appA-ok', 'appA')
  await allowed.publishAsync('things/t1/desired/speed', '3', { qos: 1 })
  await allowed.publishAsync('things/t1/properties/temp', '3', { qos: 1 })
  t.ok(allowed.connected, 'apps write desired values and properties')
  await close(allowed, bystander)
})

t.test('S4: $SYS is read-only for admins only; replies only reach the requester', async (t) => {
  const app = await login('app-sys', 'appA')
  t.same(await subackCodes(app, ['$SYS/#', '$SYS/thingmesh/+/x', '#']), [128, 128, 1])
  const adm = await connect(node.port, { clientId: 'adm-sys', username: 'admin', password: 'admin-secret-1' })
  const got = collect(adm)
  t.same(await subackCodes(adm, ['$SYS/#']), [1])
  await waitFor(() => got.some((m) => m.topic.startsWith('$SYS/')), 'admin receives $SYS')
  await close(app, adm)
})

t.test('S9: TLS with client certificates; TLS < 1.2 refused', async (t) => {
  const ca = pki.read(pki.caCert)
  const c = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { clientId: 'devA:tls', ca, cert: pki.read(devCert.cert), key: pki.read(devCert.key), protocolVersion: 4, reconnectPeriod: 0 })
  const got: string[] = []
  c.on('message', (topic) => got.push(topic))
  t.same(await subackCodes(c, ['#', 'things/devA/#']), [128, 1], 'the certificate CN is the user, with its ACL')
  await c.publishAsync('things/devA/properties/tls', '1', { qos: 1 })
  await waitFor(() => got.includes('things/devA/properties/tls'), 'round trip over TLS')
  await c.endAsync()
  t.ok(await refusal(mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, { ca, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 3000 })) !== 0, 'no client certificate: refused')
  const v11 = await new Promise<string>((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port: tlsPort, ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', cert: pki.read(devCert.cert), key: pki.read(devCert.key) })
    s.once('secureConnect', () => { s.destroy(); resolve('connected') })
    s.once('error', (err) => resolve(err.message))
  })
  t.not(v11, 'connected', `TLS 1.1 refused (${v11})`)
})

t.test('S8: WebSocket with Origin allow-list, maxPayload and the wire guard', async (t) => {
  const c = await mqtt.connectAsync(`ws://127.0.0.1:${wsPort}/mqtt`, { clientId: 'ws-app', username: 'appA', password: 'appA-password', protocolVersion: 4, reconnectPeriod: 0 })
  const got: string[] = []
  c.on('message', (_topic, p) => got.push(p.toString()))
  await c.subscribeAsync('ws/echo', { qos: 1 })
  await c.publishAsync('ws/echo', 'over-ws', { qos: 1 })
  await waitFor(() => got.includes('over-ws'), 'round trip over WebSocket')
  await c.endAsync()

  const status = (origin: string): Promise<number> => new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, 'mqtt', { origin })
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate() })
    ws.on('open', () => { resolve(101); ws.close() })
    ws.on('error', () => {})
  })
  t.equal(await status('http://evil.example'), 403, 'foreign Origin: 403')
  t.equal(await status('http://good.example'), 101, 'allowed Origin: upgraded')

  const big = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, 'mqtt')
    ws.on('open', () => ws.send(Buffer.alloc(200 * 1024)))
    ws.on('close', (code) => resolve(code))
    ws.on('error', () => {})
  })
  t.equal(big, 1009, 'frame over maxPayload closes with 1009')

  const reserved = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/mqtt`, 'mqtt')
    ws.on('open', () => ws.send(Buffer.from([0xf0, 0x00])))
    ws.on('close', (code) => resolve(code))
    ws.on('error', () => {})
  })
  t.ok(reserved > 0, `reserved packet type over WS closes the socket (code ${reserved})`)
})
