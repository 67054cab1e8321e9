import t from 'tap'
import { LoadtestError } from '../errors.ts'
import { parseArgs, parseDurationMs } from '../options.ts'

const problemsOf = (argv: string[]): string[] => {
  try {
    parseArgs(argv)
  } catch (e) {
    if (e instanceof LoadtestError) {
      t.equal(e.code, 'LOADTEST_BAD_OPTION')
      t.equal(e.exitCode, 2)
      return [...e.problems]
    }
    throw e
  }
  return []
}

t.test('every problem is reported together', async (t) => {
  const p = problemsOf(['pub', '--qos', '3', '--clients', '0', '--rate', '-5', '--duration', 'soon', '--url', 'ftp://x'])
  t.equal(p.length, 5, p.join(' | '))
  t.match(p.join('\n'), /--qos/)
  t.match(p.join('\n'), /--clients/)
  t.match(p.join('\n'), /--rate/)
  t.match(p.join('\n'), /--duration/)
  t.match(p.join('\n'), /unsupported scheme/)
})

t.test('single problems', async (t) => {
  t.match(problemsOf(['nope']).join(), /unknown scenario/)
  t.match(problemsOf(['pub', '--password', 'x']).join(), /requires --username/)
  t.match(problemsOf(['failover', '--at', '5']).join(), /--at and --exec go together/)
  t.match(problemsOf(['failover', '--at', '20', '--exec', 'true', '--duration', '10']).join(), /before the end/)
  t.match(problemsOf(['pub', '--topic', 'a/+/b']).join(), /wildcards/)
  t.match(problemsOf(['pub', '--topic', 'a/{bogus}']).join(), /unknown placeholder/)
  t.match(problemsOf(['pubsub', '--sub-topic', 'a/#/b']).join(), /not a valid MQTT topic filter/)
  t.match(problemsOf(['pub', '--ca', '/nonexistent/ca.pem']).join(), /cannot read/)
  t.match(problemsOf(['pub', '--workers', '5', '--clients', '2']).join(), /more than the 2 clients/)
  t.match(problemsOf(['fleet', '--topic', 'x/{clientId}']).join(), /\{thingId\}/)
  t.match(problemsOf(['pub', '--frobnicate']).join(), /unknown option/)
  t.match(problemsOf(['conn', '--count', '5']).join(), /conn holds connections/)
})

t.test('defaults and derived settings', async (t) => {
  const r = parseArgs(['latency', '--url', '127.0.0.1:1883,127.0.0.1:1884', '--payload-size', '100'])
  if (r.kind !== 'run') throw new Error('expected run')
  const c = r.config
  t.same(c.urls, ['mqtt://127.0.0.1:1883', 'mqtt://127.0.0.1:1884'])
  t.same(c.subUrls, ['mqtt://127.0.0.1:1884', 'mqtt://127.0.0.1:1883'], 'subscribers sit on the other broker')
  t.equal(c.rate, 100, 'latency is paced by default')
  t.equal(c.durationMs, 10_000)
  t.equal(c.payloadSize, 100)
  t.equal(c.subTopic, 'loadtest/+')
  t.equal(c.clean, true)
  t.ok(Object.isFrozen(c))
  const f = parseArgs(['failover', '--no-clean', '--count', '50'])
  if (f.kind !== 'run') throw new Error('expected run')
  t.equal(f.config.qos, 1)
  t.equal(f.config.clean, false)
  t.equal(f.config.durationMs, null)
  t.equal(f.config.timeoutMs, 300_000, '--count alone is still bounded')
  t.equal(parseArgs(['--help']).kind, 'help')
})

t.test('durations', async (t) => {
  t.equal(parseDurationMs('30'), 30_000)
  t.equal(parseDurationMs('1.5s'), 1500)
  t.equal(parseDurationMs('250ms'), 250)
  t.equal(parseDurationMs('2m'), 120_000)
  t.equal(parseDurationMs('0'), null)
  t.equal(parseDurationMs('-1s'), null)
  t.equal(parseDurationMs('soon'), null)
})
