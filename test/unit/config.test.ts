import t from 'tap'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { envOf, flagOf, loadConfig } from '../../broker/config.ts'
import { parseSentinelUrl } from '../../broker/cluster/redis.ts'
import { ThingmeshError } from '../../broker/errors.ts'

t.test('defaults: standalone on loopback', async (t) => {
  const c = loadConfig({})
  t.equal(c.host, '127.0.0.1')
  t.equal(c.port, 1883)
  t.equal(c.redis, undefined)
  t.equal(c.maxPacketSize, 1048576)
  t.ok(Object.isFrozen(c), 'config is frozen')
})

t.test('precedence: file < env < command line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tm-cfg-'))
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify({ port: 1000, httpPort: 2000, nodeId: 'from-file' }))
  const c = loadConfig({ file, env: { THINGMESH_PORT: '1001', THINGMESH_NODE_ID: 'from-env' }, cli: { port: '1002' } })
  t.equal(c.port, 1002)
  t.equal(c.httpPort, 2000)
  t.equal(c.nodeId, 'from-env')
})

t.test('every problem reported together, named by flag', async (t) => {
  const err = t.throws(() => loadConfig({ cli: { port: '70000', logLevel: 'loud', redis: 'http://x' } })) as unknown as ThingmeshError
  t.equal(err.code, 'CONFIG_INVALID')
  t.match(err.message, /--port/)
  t.match(err.message, /--log-level/)
  t.match(err.message, /--redis/)
  t.equal((err.details?.problems as string[]).length, 3)
})

t.test('unknown keys in a config file are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tm-cfg-'))
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify({ prot: 1 }))
  t.throws(() => loadConfig({ file }), /unknown option\(s\) --prot/)
  writeFileSync(file, '{not json')
  t.throws(() => loadConfig({ file }), { code: 'CONFIG_FILE_UNREADABLE' })
})

t.test('cross-field check: dead-after must exceed two heartbeats', async (t) => {
  t.throws(() => loadConfig({ cli: { heartbeatMs: '1000', deadAfterMs: '1500' } }), /--dead-after-ms/)
})

t.test('flag and env names derive from the option key', async (t) => {
  t.equal(flagOf('maxPacketSize'), '--max-packet-size')
  t.equal(envOf('maxPacketSize'), 'THINGMESH_MAX_PACKET_SIZE')
})

t.test('Sentinel URLs', async (t) => {
  const o = parseSentinelUrl('redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.1:26380/mymaster?db=2')
  t.same(o.sentinels, [{ host: '127.0.0.1', port: 26379 }, { host: '127.0.0.1', port: 26380 }])
  t.equal(o.name, 'mymaster')
  t.equal(o.password, 's3cret')
  t.equal(o.db, 2)
  t.throws(() => parseSentinelUrl('redis+sentinel://127.0.0.1:26379'), /masterName/)
  t.equal(loadConfig({ cli: { redis: 'redis+sentinel://127.0.0.1:26379/mymaster' } }).redis, 'redis+sentinel://127.0.0.1:26379/mymaster')
})
