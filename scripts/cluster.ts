/**
 * `npm run cluster`: the docker/docker-compose.yml topology as local
 * processes, for machines without Docker. Redis primary + replica, three
 * Sentinels, three thingmesh nodes on the Sentinel URL, and HAProxy in front
 * when the `haproxy` binary is installed. Everything listens on 127.0.0.1 on
 * free ports; data and logs go to a temp folder removed on exit.
 *
 * Stops on Ctrl-C or SIGTERM, or by itself after `--for <seconds>` once
 * ready. Exit code 0 after a clean stop, 1 when start-up failed, 2 on bad
 * arguments.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { renderHaproxyConfig, serverStates } from './local-cluster/haproxy.ts'
import { startNodes, type LocalNode } from './local-cluster/nodes.ts'
import { MASTER_NAME, startRedisTopology } from './local-cluster/redis.ts'
import { findBinary, Supervisor, type Child } from './local-cluster/supervisor.ts'
import { freePort, httpGet, StartError, waitFor } from './local-cluster/wait.ts'

const HELP = `Usage: npm run cluster -- [options]

Starts a local thingmesh cluster: Redis primary + replica + 3 Sentinels,
3 broker nodes and HAProxy (if installed), all on 127.0.0.1, free ports.

Options:
  --for <seconds>   stop by itself this long after the cluster is ready
  --nodes <n>       number of broker nodes, 1-9 (default 3)
  --no-haproxy      do not start HAProxy even if it is installed
  --keep            keep the temp folder (data, logs) after stopping
  -h, --help        show this help

Ctrl-C (SIGINT) or SIGTERM stops every process it started, nodes first;
a second Ctrl-C kills them at once.
`

function parseCli (): { forSec: number | null, nodes: number, haproxy: boolean, keep: boolean } {
  let values
  try {
    values = parseArgs({
      options: {
        for: { type: 'string' },
        nodes: { type: 'string', default: '3' },
        'no-haproxy': { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values
  } catch (err) {
    usageError((err as Error).message)
  }
  if (values.help) { process.stdout.write(HELP); process.exit(0) }
  const problems: string[] = []
  let forSec: number | null = null
  if (values.for !== undefined) {
    forSec = Number(values.for)
    if (!Number.isFinite(forSec) || forSec <= 0) problems.push(`--for: expected a positive number of seconds, got '${values.for}'`)
  }
  const nodes = Number(values.nodes)
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9) problems.push(`--nodes: expected 1-9, got '${values.nodes}'`)
  if (problems.length > 0) usageError(problems.join('; '))
  return { forSec, nodes, haproxy: !values['no-haproxy'], keep: values.keep }
}

function usageError (msg: string): never {
  process.stderr.write(`cluster: ${msg}\n\n${HELP}`)
  process.exit(2)
}

const say = (line: string): void => { process.stderr.write(line + '\n') }

const opts = parseCli()
const dir = mkdtempSync(join(tmpdir(), 'thingmesh-cluster-'))
const sup = new Supervisor()
let stopping: Promise<never> | null = null

function shutdown (code: number, reason: string): Promise<never> {
  if (stopping) return stopping
  stopping = (async () => {
    say(`stopping (${reason})…`)
    const isNode = (c: Child): boolean => c.name.startsWith('local')
    await sup.stopAll([
      // Nodes first: each leaves the cluster and flushes sessions while Redis is up.
      { match: isNode, graceMs: 12_000 },
      { match: (c) => c.name === 'haproxy', graceMs: 3000 },
      { match: (c) => c.name.startsWith('sentinel'), graceMs: 3000 },
      { match: (c) => c.name === 'redis-replica', graceMs: 3000 },
      { match: (c) => c.name === 'redis-primary', graceMs: 3000 },
    ])
    if (opts.keep || code !== 0) {
      say(`kept ${dir} (data and logs)`)
    } else {
      rmSync(dir, { recursive: true, force: true })
    }
    say('all processes stopped')
    process.exit(code)
  })()
  return stopping
}

function onSignal (signal: string): void {
  if (stopping) {
    say(`${signal} again: killing every process now`)
    sup.killAll()
    return
  }
  say('(Ctrl-C again kills everything at once)')
  void shutdown(0, signal)
}
process.on('SIGINT', () => onSignal('SIGINT'))
process.on('SIGTERM', () => onSignal('SIGTERM'))
process.on('uncaughtException', (err) => { say(`cluster: ${err.stack ?? err.message}`); void shutdown(1, 'internal error') })

async function startHaproxy (bin: string, nodes: LocalNode[]): Promise<{ mqttPort: number, statsPort: number, child: Child }> {
  const mqttPort = await freePort()
  const statsPort = await freePort()
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(cfg, renderHaproxyConfig({
    bindHost: '127.0.0.1',
    mqttPort,
    statsPort,
    nodes: nodes.map((n) => ({ name: n.nodeId, host: '127.0.0.1', mqttPort: n.mqttPort, httpPort: n.httpPort })),
  }))
  // -db: stay in the foreground, so the supervisor owns the process.
  const child = sup.start('haproxy', bin, ['-db', '-f', cfg], { logFile: join(dir, 'haproxy.log') })
  await waitFor('HAProxy to mark every node UP', async () => {
    const res = await httpGet(`http://127.0.0.1:${statsPort}/;csv`)
    if (res?.status !== 200) return false
    const states = serverStates(res.body, 'thingmesh_mqtt')
    return states.size === nodes.length && [...states.values()].every((s) => s.startsWith('UP'))
  }, { timeoutMs: 20_000, watch: [child] })
  return { mqttPort, statsPort, child }
}

async function main (): Promise<void> {
  say(`starting Redis primary + replica + 3 Sentinels (data and logs in ${dir})…`)
  const redis = await startRedisTopology(sup, dir)
  say(`starting ${opts.nodes} thingmesh node(s)…`)
  const [started] = await Promise.all([
    startNodes(sup, dir, { count: opts.nodes, sentinelUrl: redis.sentinelUrl, primaryUrl: redis.primaryUrl, watch: redis.children }),
    redis.converged,
  ])
  if (started.fallbackReason) {
    say(`WARNING: ${started.fallbackReason}; the nodes use the primary directly (${redis.primaryUrl}) and will NOT follow a Sentinel failover. See ${join(dir, 'local1.log')}.`)
  }
  let lb: Awaited<ReturnType<typeof startHaproxy>> | null = null
  const haproxyBin = opts.haproxy ? findBinary('haproxy') : null
  if (opts.haproxy && !haproxyBin) say('note: haproxy is not installed (apt-get install -y haproxy); connect to the nodes directly')
  if (haproxyBin) {
    say('starting HAProxy…')
    lb = await startHaproxy(haproxyBin, started.nodes)
  }

  const { nodes } = started
  const a = nodes[0]
  const b = nodes[1] ?? nodes[0]
  const out: string[] = [
    '',
    'thingmesh local cluster',
    `  folder      ${dir}  (one .log per process)`,
    `  redis       primary 127.0.0.1:${redis.primaryPort}  replica 127.0.0.1:${redis.replicaPort}`,
    `  sentinels   ${redis.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(' ')}  master ${MASTER_NAME}`,
    `  nodes use   ${started.redisUrl}`,
    ...nodes.map((n) => `  node ${n.nodeId}  mqtt 127.0.0.1:${n.mqttPort}  http 127.0.0.1:${n.httpPort}  (http://127.0.0.1:${n.httpPort}/healthz, /metrics)`),
    lb
      ? `  haproxy     mqtt 127.0.0.1:${lb.mqttPort}  stats http://127.0.0.1:${lb.statsPort}/`
      : '  haproxy     not running',
    `  pids        ${sup.children.filter((c) => c.alive()).map((c) => `${c.name}=${c.pid}`).join(' ')}`,
    '',
    'Try (a message published on one node reaches a subscriber on another):',
    `  npx mqtt sub -h 127.0.0.1 -p ${a.mqttPort} -t 'demo/#' -v`,
    `  npx mqtt pub -h 127.0.0.1 -p ${b.mqttPort} -t demo/hello -m 'hello from ${b.nodeId}'`,
    ...(lb ? [`  npx mqtt pub -h 127.0.0.1 -p ${lb.mqttPort} -t demo/hello -m 'through haproxy'`] : []),
    'Kill a node (kill <pid>) to watch its clients move, or the primary to watch a Sentinel failover.',
    '',
    opts.forSec === null ? 'thingmesh cluster ready; Ctrl-C stops it' : `thingmesh cluster ready; stops in ${opts.forSec} s (or on Ctrl-C)`,
    '',
  ]
  process.stdout.write(out.join('\n'))

  // After start-up a crashed process is reported, not fatal: killing nodes
  // and Redis by hand is what this cluster is for.
  for (const c of sup.children.filter((c) => c.alive())) {
    void c.exited.then((code) => { if (!stopping) say(`${c.name} (pid ${c.pid}) exited (${code}); log: ${c.logFile}`) })
  }
  if (opts.forSec !== null) setTimeout(() => { void shutdown(0, `--for ${opts.forSec} s elapsed`) }, opts.forSec * 1000)
}

main().catch((err: Error) => {
  if (stopping) return
  say(`cluster: start-up failed: ${err.message}`)
  if (err instanceof StartError && err.child) say(`--- last lines of ${err.child.logFile} ---\n${err.child.tail(15)}\n---`)
  void shutdown(1, 'start-up failed')
})
