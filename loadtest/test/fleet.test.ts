import t from 'tap'
import { LoadtestError } from '../errors.ts'
import { startFakeEngine } from './helpers/fake-engine.ts'
import { startMosquitto } from './helpers/mosquitto.ts'
import { run } from './helpers/run.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

t.test('creates things, then measures device-to-notification latency', async (t) => {
  const engine = await startFakeEngine(broker.url)
  t.teardown(() => engine.close())
  const r = await run(['fleet', '--url', broker.url, '--clients', '5', '--count', '200', '--qos', '1', '--rate', '400', '--client-prefix', 'fl'])
  t.same([...engine.created].sort(), ['fl-thing-0', 'fl-thing-1', 'fl-thing-2', 'fl-thing-3', 'fl-thing-4'])
  t.equal(r.fleet?.create?.created, 5)
  t.equal(r.fleet?.updates, 200)
  t.equal(r.fleet?.notifications, 200, 'every update came back as a state change')
  t.equal(r.latency.count, 200)
  t.ok(r.events.some((e) => e.label === 'things created'))
})

t.test('--no-create skips creation; without an engine nothing is notified', async (t) => {
  const r = await run(['fleet', '--url', broker.url, '--clients', '2', '--count', '20', '--no-create', '--drain', '200ms'])
  t.equal(r.fleet?.create, null)
  t.equal(r.fleet?.updates, 20)
  t.equal(r.fleet?.notifications, 0)
})

t.test('creation without an engine fails with a clear error', async (t) => {
  const err = await run(['fleet', '--url', broker.url, '--clients', '2', '--count', '20', '--create-timeout', '300ms']).then(
    () => null,
    (e: unknown) => e,
  )
  t.ok(err instanceof LoadtestError)
  t.equal((err as LoadtestError).code, 'LOADTEST_CREATE_FAILED')
  t.match((err as LoadtestError).message, /created 0\/2 things: 2 timeout .*use --no-create/)
})
