// WebSocket, TLS, and connection failures by reason.

import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync } from 'node:fs'
import { join } from 'node:path'
import { LoadtestError } from '../errors.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { run } from './helpers/run.ts'
import { startWsProxy } from './helpers/ws-proxy.ts'

t.test('MQTT over WebSocket', async (t) => {
  const broker = await startMosquitto()
  t.teardown(() => broker.stop())
  const proxy = await startWsProxy(broker.port)
  t.teardown(() => proxy.close())
  const r = await run(['pubsub', '--url', proxy.url, '--clients', '2', '--count', '300', '--qos', '1'])
  t.equal(r.messages.sent, 300)
  t.equal(r.messages.received, 300)
  t.equal(r.loss.lost, 0)
  // --ws turns a host:port into ws://host:port/mqtt
  const r2 = await run(['pub', '--url', proxy.url.replace('ws://', '').replace('/mqtt', ''), '--ws', '--clients', '1', '--count', '10'])
  t.equal(r2.messages.sent, 10)
})

t.test('TLS with a CA, with --insecure, and refused without either', async (t) => {
  let certDir = ''
  const broker = await startMosquitto({
    prepare: (dir) => {
      certDir = dir
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ], { stdio: 'ignore' })
      chmodSync(join(dir, 'key.pem'), 0o644)
    },
    tls: true,
    listener: (dir) => [`certfile ${join(dir, 'cert.pem')}`, `keyfile ${join(dir, 'key.pem')}`],
  })
  t.teardown(() => broker.stop())
  const hostPort = `127.0.0.1:${broker.port}`
  const withCa = await run(['pubsub', '--url', hostPort, '--tls', '--ca', join(certDir, 'cert.pem'), '--clients', '2', '--count', '100', '--qos', '1'])
  t.equal(withCa.messages.received, 100)
  const insecure = await run(['pub', '--url', broker.url, '--insecure', '--clients', '1', '--count', '10'])
  t.equal(insecure.messages.sent, 10)
  const err = await run(['pub', '--url', broker.url, '--clients', '1', '--count', '10']).then(() => null, (e: unknown) => e)
  t.ok(err instanceof LoadtestError)
  t.equal((err as LoadtestError).code, 'LOADTEST_UNREACHABLE')
  t.match((err as LoadtestError).message, /SELF_SIGNED|self.signed/i)
})

t.test('--username/--password, and a refused login is one clear error', async (t) => {
  const broker = await startMosquitto({
    prepare: (dir) => {
      execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), 'loader', 's3cret'], { stdio: 'ignore' })
      chmodSync(join(dir, 'passwd'), 0o644)
    },
    noAnonymous: true,
  })
  t.teardown(() => broker.stop())
  const ok = await run(['pubsub', '--url', broker.url, '--username', 'loader', '--password', 's3cret', '--count', '50', '--qos', '2'])
  t.equal(ok.messages.received, 50, 'QoS 2 end to end')
  t.equal(ok.loss.duplicates, 0)
  const err = await run(['pub', '--url', broker.url, '--username', 'loader', '--password', 'wrong', '--count', '5']).then(() => null, (e: unknown) => e)
  t.ok(err instanceof LoadtestError)
  t.equal((err as LoadtestError).code, 'LOADTEST_UNREACHABLE')
  t.match((err as LoadtestError).message, /cannot connect to broker: .* connack 5 \(.*Not authorized\)/)
})

t.test('conn: failures are counted by reason', async (t) => {
  const broker = await startMosquitto({ listener: () => ['max_connections 6'] })
  t.teardown(() => broker.stop())
  // mosquitto 2.0.11 lets max_connections + 1 in; the exact cut-off is the broker's business.
  const r = await run(['conn', '--url', broker.url, '--clients', '10', '--duration', '500ms', '--reconnect-period', '10s', '--connect-timeout', '3s'])
  t.equal(r.connections.attempted, 10)
  const failed = Object.values(r.connections.failures).reduce((a, b) => a + b, 0)
  t.ok(failed >= 3 && failed <= 4, JSON.stringify(r.connections.failures))
  t.equal(r.connections.connected + failed, 10, 'every client either connected or failed with a reason')
  // mosquitto closes the socket; whether the client sees a clean close or a reset depends on timing.
  for (const reason of Object.keys(r.connections.failures)) t.match(reason, /^(closed before CONNACK|ECONNRESET|EPIPE)$/)
})
