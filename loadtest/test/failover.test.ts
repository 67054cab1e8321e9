// Failover against a broker that is killed and restarted mid-run by --exec.

import t from 'tap'
import { MOSQUITTO, startMosquitto } from './helpers/mosquitto.ts'
import { run } from './helpers/run.ts'

const broker = await startMosquitto()
t.teardown(() => broker.stop())

t.test('kill -9 and restart: gap, recovery, and exact accounting', async (t) => {
  const exec = `kill -9 ${broker.pid()} && ${MOSQUITTO} -d -c ${broker.confPath}`
  const r = await run([
    'failover', '--url', broker.url, '--clients', '3', '--subscribers', '2', '--rate', '200',
    '--duration', '4', '--at', '1.5', '--exec', exec, '--reconnect-period', '200ms', '--drain', '5s',
  ])
  const f = r.failover!
  t.equal(f.execExitCode, 0, 'the command ran')
  t.ok(r.events.some((e) => e.label.startsWith('exec: kill -9')))
  t.equal(f.clientsDisconnected, 5, 'every client lost its connection')
  t.equal(f.clientsStillDown, 0)
  t.ok(f.recoveryMs !== null && f.recoveryMs > 0 && f.recoveryMs < 10_000, `recovery ${f.recoveryMs} ms`)
  t.ok(f.longestGapMs > 0, `gap ${f.longestGapMs} ms`)
  t.equal(r.settings.qos, 1)
  // Whatever was lost, every message is either delivered once or counted lost.
  t.equal(r.loss.unique + r.loss.lost, r.messages.sent * 2)
  t.ok(r.timeline.some((p) => p.disconnects > 0))
})
