// The tool against a standalone thingmesh node (bin/thingmesh start), including
// broker memory per connection from its /metrics endpoint.

import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from './helpers/mosquitto.ts'
import { run } from './helpers/run.ts'

const THINGMESH = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))

const port = await freePort()
const httpPort = await freePort()
// Through sh to drop the NODE_OPTIONS tap injects (see helpers/run.ts).
const node = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', THINGMESH, 'start', '--host', '127.0.0.1', '--port', String(port), '--http-port', String(httpPort)], {
  stdio: ['ignore', 'ignore', 'pipe'],
})
t.teardown(async () => {
  if (node.exitCode !== null || node.signalCode !== null) return
  const exited = new Promise((r) => node.once('exit', r))
  node.kill('SIGTERM')
  await exited
})
await new Promise<void>((resolve, reject) => {
  let log = ''
  const onData = (d: Buffer): void => {
    log += d.toString()
    if (log.includes('"event":"node.started"')) {
      node.stderr!.off('data', onData)
      node.stderr!.resume()
      resolve()
    }
  }
  node.stderr!.on('data', onData)
  node.once('exit', (code) => reject(new Error(`thingmesh exited with ${code}: ${log}`)))
})
const url = `mqtt://127.0.0.1:${port}`

t.test('pubsub through thingmesh: nothing lost', async (t) => {
  const r = await run(['pubsub', '--url', url, '--clients', '3', '--subscribers', '2', '--count', '600', '--rate', '300', '--qos', '1'])
  t.equal(r.messages.sent, 600)
  t.equal(r.messages.received, 1200)
  t.equal(r.loss.lost, 0)
  t.equal(r.loss.duplicates, 0)
})

t.test('conn with --metrics reads the node\'s resident memory', async (t) => {
  const r = await run(['conn', '--url', url, '--clients', '50', '--ramp', '100', '--duration', '500ms', '--metrics', `http://127.0.0.1:${httpPort}/metrics`])
  t.equal(r.connections.connected, 50)
  t.ok(r.memory !== null && r.memory.beforeBytes > 0 && r.memory.afterBytes > 0, JSON.stringify(r.memory))
})
