import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Black-box test of `npm run cluster` (scripts/cluster.ts): the local-process
// topology starts, a publish crosses nodes, and every process it started is
// gone after it stops, whether by --for or by SIGTERM.

const root = fileURLToPath(new URL('../../', import.meta.url))

interface Run {
  proc: ChildProcess
  out: () => string
  err: () => string
  exited: Promise<number | null>
}

function startCluster (args: string[]): Run {
  // `env -u NODE_OPTIONS`: run as a user would, without tap's loaders.
  const proc = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, '--import', 'tsx', 'scripts/cluster.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr!.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGTERM') })
  return { proc, out: () => out, err: () => err, exited }
}

interface Ready {
  nodes: Array<{ id: string, mqtt: number, http: number }>
  haproxy: number | null
  pids: number[]
  folder: string
}

async function whenReady (run: Run): Promise<Ready> {
  let done = false
  void run.exited.then(() => { done = true })
  await waitFor(() => {
    if (done) throw new Error(`cluster exited before ready:\n${run.err()}`)
    return /cluster ready/.test(run.out())
  }, 'the ready line', 60_000, 100)
  const out = run.out()
  return {
    nodes: [...out.matchAll(/^ {2}node (\S+) {2}mqtt 127\.0\.0\.1:(\d+) {2}http 127\.0\.0\.1:(\d+)/gm)].map((m) => ({ id: m[1], mqtt: Number(m[2]), http: Number(m[3]) })),
    haproxy: Number(/^ {2}haproxy {5}mqtt 127\.0\.0\.1:(\d+)/m.exec(out)?.[1]) || null,
    pids: [...(/^ {2}pids {8}(.+)$/m.exec(out)?.[1] ?? '').matchAll(/=(\d+)/g)].map((m) => Number(m[1])),
    folder: /^ {2}folder {6}(\S+)/m.exec(out)?.[1] ?? '',
  }
}

const alive = (pid: number): boolean => {
  try { process.kill(pid, 0); return true } catch { return false }
}

async function checkStopped (t: Test, run: Run, ready: Ready): Promise<void> {
  const code = await run.exited
  t.equal(code, 0, `exit code 0\n${run.err()}`)
  t.match(run.err(), /all processes stopped/)
  t.same(ready.pids.filter(alive), [], 'every process it started is gone')
  t.notOk(existsSync(ready.folder), 'temp folder removed')
}

t.test('--for: starts the topology, routes across nodes, stops by itself', async (t) => {
  const run = startCluster(['--for', '20'])
  const ready = await whenReady(run)
  t.same(ready.nodes.map((n) => n.id), ['local1', 'local2', 'local3'], 'three nodes')
  // 2 Redis + 3 Sentinels + 3 nodes (+ HAProxy when installed)
  t.equal(ready.pids.length, ready.haproxy ? 9 : 8, 'pids of every process are printed')
  t.match(run.out(), /npx mqtt sub -h 127\.0\.0\.1 -p \d+ -t 'demo\/#' -v/, 'prints an example command')
  t.match(run.out(), /nodes use {3}redis\+sentinel:\/\//, 'nodes use the Sentinels')

  const health = await (await fetch(`http://127.0.0.1:${ready.nodes[2].http}/healthz`)).json() as { members: unknown[] }
  t.equal(health.members.length, 3, 'nodes see each other')

  const sub = await connect(ready.nodes[0].mqtt, { clientId: 'deploy-sub' })
  const got = collect(sub)
  await sub.subscribeAsync('deploy/#', { qos: 1 })
  const pub = await connect(ready.nodes[1].mqtt, { clientId: 'deploy-pub' })
  await pub.publishAsync('deploy/direct', 'from local2', { qos: 1 })
  await waitFor(() => got.some((m) => m.topic === 'deploy/direct'), 'the publish on local2 to reach local1', 20_000)
  t.pass('publish on local2 reached a subscriber on local1')
  if (ready.haproxy) {
    const viaLb = await connect(ready.haproxy, { clientId: 'deploy-lb' })
    await viaLb.publishAsync('deploy/lb', 'through haproxy', { qos: 1 })
    await waitFor(() => got.some((m) => m.topic === 'deploy/lb'), 'the publish through HAProxy', 20_000)
    t.pass('publish through HAProxy reached the subscriber')
    await close(viaLb)
  } else {
    t.comment('haproxy not installed: the load-balancer path is not checked')
  }
  await close(sub, pub)
  await checkStopped(t, run, ready)
})

t.test('SIGTERM stops everything', async (t) => {
  // One node and no HAProxy: the signal path is the same, the start is shorter.
  const run = startCluster(['--nodes', '1', '--no-haproxy'])
  const ready = await whenReady(run)
  t.equal(ready.pids.length, 6, 'Redis, replica, 3 Sentinels and one node')
  run.proc.kill('SIGTERM')
  await checkStopped(t, run, ready)
})

t.test('bad arguments exit 2 with the problem and the usage', async (t) => {
  const run = startCluster(['--for', 'soon', '--nodes', '12'])
  t.equal(await run.exited, 2)
  t.match(run.err(), /--for: expected a positive number of seconds, got 'soon'; --nodes: expected 1-9, got '12'/, 'every problem reported together')
  t.match(run.err(), /Usage: npm run cluster/)
  t.equal(run.out(), '', 'nothing started')
})
