// Black-box: the bin spawned from another cwd, as an operator runs it.

import t from 'tap'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, startMosquitto } from './helpers/mosquitto.ts'
import { observe } from './helpers/observer.ts'
import { lastSpawnedPid, runCli } from './helpers/run.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

t.test('--help', async (t) => {
  const r = await runCli(['--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, /<scenario>/)
  t.match(r.stdout, /--payload-size/)
})

t.test('bad options: one line, exit 2', async (t) => {
  const r = await runCli(['pub', '--qos', '7', '--rate', 'fast'])
  t.equal(r.code, 2)
  t.equal(r.stderr.trim().split('\n').length, 1)
  t.match(r.stderr, /--rate.*--qos/, 'both problems on the one line')
  t.equal(r.stdout, '')
})

t.test('unreachable broker: one line, exit 2', async (t) => {
  const port = await freePort()
  const r = await runCli(['pub', '--url', `127.0.0.1:${port}`, '--duration', '5'])
  t.equal(r.code, 2)
  t.equal(r.stderr.trim().split('\n').length, 1)
  t.match(r.stderr, /cannot connect to broker: mqtt:\/\/127\.0\.0\.1:\d+ ECONNREFUSED/)
})

t.test('--json and --report from another cwd; quiet without a TTY', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tmlt-report-'))
  const report = join(dir, 'out.html')
  const r = await runCli(['pubsub', '--url', broker.url, '--clients', '2', '--count', '400', '--qos', '1', '--topic', 'cli-a/{clientId}', '--json', '--report', report])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stderr, '', 'no live line when stderr is not a TTY')
  const j = JSON.parse(r.stdout)
  t.equal(j.version, 1)
  t.equal(j.messages.sent, 400)
  t.equal(j.messages.received, 400)
  t.equal(j.loss.lost, 0)
  const html = readFileSync(report, 'utf8')
  t.match(html, /<svg/)
  t.match(html, /Throughput/)
  t.notMatch(html, /<script src|<link |https?:\/\/(?!www\.w3\.org)/, 'self-contained')
  const embedded = JSON.parse(/<script type="application\/json" id="result">(.*)<\/script>/s.exec(html)![1]!)
  t.equal(embedded.messages.sent, 400)
})

t.test('Ctrl-C stops cleanly and still prints the summary', async (t) => {
  const obs = await observe(broker.url, 'cli-b/#')
  t.teardown(() => obs.close())
  const started = Date.now()
  const run = runCli(['pubsub', '--url', broker.url, '--clients', '2', '--rate', '200', '--duration', '60', '--topic', 'cli-b/{clientId}'])
  await obs.waitFor(20)
  // The observer saw traffic, so the CLI is publishing: interrupt it.
  process.kill(lastSpawnedPid(), 'SIGINT')
  const r = await run
  t.equal(r.code, 130)
  t.match(r.stdout, /scenario\s+pubsub \(interrupted\)/)
  t.match(r.stdout, /lost\s+0/)
  t.ok(Date.now() - started < 30_000)
})
