import { spawn, type ChildProcess } from 'node:child_process'
import { killWithTest } from './children.ts'
import { fileURLToPath } from 'node:url'
import { freePort } from './ports.ts'
import { waitFor } from './wait.ts'

const BIN = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))

export interface NodeProcess {
  nodeId: string
  port: number
  httpPort: number
  proc: ChildProcess
  /** Everything the node wrote on stderr (its JSON log), for assertions and for failure reports. */
  log(): string
  health(): Promise<{ status: number, body: Record<string, unknown> }>
  metrics(): Promise<string>
  kill(signal?: NodeJS.Signals): Promise<number | null>
  exited: Promise<number | null>
}

export interface NodeOptions {
  redis?: string
  nodeId?: string
  args?: string[]
  env?: Record<string, string>
  /** Start with --allow-anonymous true (the default here, so older tests connect without users); false applies the node's own default. */
  anonymous?: boolean
  /** Extra node flags (e.g. --cpu-prof for a benchmark's profile). */
  execArgv?: string[]
}

/** Spawns `bin/thingmesh start` on free ports and resolves once /healthz says 200. */
export async function startNodeProcess (opts: NodeOptions = {}): Promise<NodeProcess> {
  // freePort() closes the port it found; another process on the box may take
  // it before the node binds (seen in CI). Such a start is retried on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts)
    } catch (err) {
      if (attempt >= 3 || !(err instanceof PortTaken)) throw err
    }
  }
}

class PortTaken extends Error {}

async function startOnce (opts: NodeOptions): Promise<NodeProcess> {
  const port = await freePort()
  const httpPort = await freePort()
  const nodeId = opts.nodeId ?? `n${port}`
  const args = ['start', '--host', '127.0.0.1', '--port', String(port), '--http-port', String(httpPort), '--node-id', nodeId, '--log-level', 'info']
  if (opts.redis) args.push('--redis', opts.redis)
  if (opts.anonymous !== false) args.push('--allow-anonymous', 'true')
  args.push(...(opts.args ?? []))
  // The node runs as in production: tap injects its loaders through
  // NODE_OPTIONS into every child it sees spawned; `env -u` (which execs, so
  // the PID is the node's) drops them.
  const proc = killWithTest(spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, ...(opts.execArgv ?? []), BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } }))
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  let killedByTest = false
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code, signal) => {
    // A node that fails on its own (a crash, a fence) is the usual cause of a
    // confusing failure later in the file (ECONNREFUSED, timeouts): say so
    // with its last log lines, which tap shows with the test's output.
    if (!killedByTest && code !== 0 && !/EADDRINUSE/.test(stderr)) process.stderr.write(`\n# node ${nodeId} exited by itself (code ${code}, signal ${signal}); last log lines:\n${stderr.trimEnd().split('\n').slice(-25).map((l) => `#   ${l.slice(0, 400)}`).join('\n')}\n`)
    resolve(code)
  }))
  const node: NodeProcess = {
    nodeId, port, httpPort, proc, exited,
    log: () => stderr,
    async health () {
      const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`)
      return { status: res.status, body: await res.json() as Record<string, unknown> }
    },
    async metrics () {
      return (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()
    },
    async kill (signal = 'SIGKILL') {
      killedByTest = true
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      return exited
    },
  }
  // 60 s: on the shared 2-core box at load average 30 a start (tsx
  // transpiling the broker) took over 20 s; a node that never starts still fails.
  // A node that exits during start fails at once.
  const died = exited.then((code) => {
    if (/EADDRINUSE/.test(stderr)) throw new PortTaken(`node ${nodeId}: port taken before it could bind`)
    throw new Error(`node ${nodeId} exited during start (code ${code}):\n${stderr}`)
  })
  died.catch(() => {})
  await Promise.race([waitFor(async () => (await node.health()).status === 200, `node ${nodeId} healthy`, 60_000, 50), died])
  return node
}

/** Starts n cluster nodes on one Redis. */
export async function startCluster (redisUrl: string, n: number, args: string[] = []): Promise<NodeProcess[]> {
  const nodes: NodeProcess[] = []
  for (let i = 0; i < n; i++) nodes.push(await startNodeProcess({ redis: redisUrl, nodeId: `node${i + 1}`, args }))
  await waitFor(async () => {
    for (const node of nodes) {
      const { body } = await node.health()
      if ((body.members as unknown[]).length !== n) return false
    }
    return true
  }, `${n} nodes to see each other`, 10_000, 50)
  return nodes
}

export async function stopAll (nodes: NodeProcess[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
}
