// Broker node processes for the chaos campaign. Unlike test/helpers/node.ts a
// node here keeps its ports across restarts (so clients' `servers` lists stay
// valid after "restart n1"), can run inside a network namespace, and exposes
// its PID for signal faults.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { freePort } from '../helpers/ports.ts'
import { waitFor } from '../helpers/wait.ts'
import { track } from './reaper.ts'

/**
 * The node under test. CHAOS_THINGMESH_BIN points at another checkout (e.g. a
 * snapshot of a commit) so a campaign is not disturbed by a tree being edited.
 */
export const BIN = process.env.CHAOS_THINGMESH_BIN ?? fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))

export interface ChaosNode {
  nodeId: string
  /** Address clients use (127.0.0.1, or the namespace's address). */
  host: string
  port: number
  httpPort: number
  proc: ChildProcess
  pid(): number
  alive(): boolean
  log(): string
  health(): Promise<{ status: number, body: Record<string, unknown> }>
  metrics(): Promise<string>
  /** Sends a signal; for SIGKILL/SIGTERM resolves when the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>
  /** Starts the process again on the same ports; resolves when healthy. */
  restart(): Promise<void>
  exits: number[]
  /** Exits not caused by our own kill(). */
  unexpectedExits(): number
}

export interface ChaosNodeOptions {
  redis: string
  nodeId: string
  args?: string[]
  /** Run inside `ip netns exec <netns>` and listen on `host`. */
  netns?: string
  host?: string
}

let helpText: string | null = null
/** `thingmesh start --help`, to detect options other engineers are still adding. */
export function startHelp (): string {
  helpText ??= spawnSync('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'start', '--help'], { encoding: 'utf8' }).stdout
  if (!helpText) throw new Error(`cannot read \`${BIN} start --help\`: feature detection impossible`)
  return helpText
}
export function hasOption (flag: string): boolean { return startHelp().includes(flag) }

/** `[flag, value]` if the node under test knows the option, else nothing. */
export function ifOption (flag: string, value: string): string[] {
  return hasOption(flag) ? [flag, value] : []
}

/**
 * Per-IP connection caps are a feature under test (S5) but get in the way of
 * tests where every client comes from 127.0.0.1 on purpose.
 */
export function noIpCaps (): string[] {
  return [...ifOption('--max-connections-per-ip', '0'), ...ifOption('--connect-rate-per-ip', '0'), ...ifOption('--publish-rate-per-client', '0')]
}

/** Default arguments every chaos node gets (anonymous access when the option exists). */
export function baseArgs (): string[] {
  return hasOption('--allow-anonymous') ? ['--allow-anonymous', 'true'] : []
}

/**
 * Launch settings docker/Dockerfile gives a node, so the campaign measures what
 * production runs (keep the defaults in step with its ENV): V8's old space
 * capped, which also keeps V8's heap growing factor at 2 or less instead of 4
 * (V8 allows 4 only from 2048 MiB up), and glibc's mmap threshold fixed at
 * 128 KiB, so freed payload buffers go back to the system instead of staying
 * in malloc's arenas (S6). CHAOS_NODE_MAX_OLD_SPACE_MB and
 * CHAOS_NODE_MMAP_THRESHOLD change them (not the image's names: glibc would
 * apply MALLOC_MMAP_THRESHOLD_ to the harness itself); empty turns one off.
 * CHAOS_NODE_FLAGS adds node/V8 flags, separated by spaces, for experiments.
 */
const LAUNCH_DEFAULTS = { heapMb: '1024', mmapThreshold: '131072' }

export function launchSettings (): { heapMb: string, mmapThreshold: string, env: string[], nodeFlags: string[] } {
  const heapMb = process.env.CHAOS_NODE_MAX_OLD_SPACE_MB ?? LAUNCH_DEFAULTS.heapMb
  const mmapThreshold = process.env.CHAOS_NODE_MMAP_THRESHOLD ?? LAUNCH_DEFAULTS.mmapThreshold
  if (heapMb !== '' && !/^[1-9]\d*$/.test(heapMb)) throw new Error(`CHAOS_NODE_MAX_OLD_SPACE_MB=${heapMb}: not a whole number of MiB`)
  if (mmapThreshold !== '' && !/^\d+$/.test(mmapThreshold)) throw new Error(`CHAOS_NODE_MMAP_THRESHOLD=${mmapThreshold}: not a number of bytes`)
  return {
    heapMb,
    mmapThreshold,
    env: mmapThreshold === '' ? ['-u', 'MALLOC_MMAP_THRESHOLD_'] : [`MALLOC_MMAP_THRESHOLD_=${mmapThreshold}`],
    nodeFlags: [...(heapMb === '' ? [] : [`--max-old-space-size=${heapMb}`]), ...(process.env.CHAOS_NODE_FLAGS ?? '').split(' ').filter(Boolean)],
  }
}

export async function startChaosNode (opts: ChaosNodeOptions): Promise<ChaosNode> {
  const host = opts.host ?? '127.0.0.1'
  const port = await freePort()
  const httpPort = await freePort()
  const args = ['start', '--host', host, '--port', String(port), '--http-port', String(httpPort), '--node-id', opts.nodeId, '--log-level', 'info', '--redis', opts.redis, ...baseArgs(), ...(opts.args ?? [])]
  let stderr = ''
  let expectExit = false
  let unexpected = 0
  const launch = (): ChildProcess => {
    // `env` execs, so the PID is the node's own; tap's loaders in NODE_OPTIONS are dropped.
    const settings = launchSettings()
    const cmd = ['/usr/bin/env', '-u', 'NODE_OPTIONS', ...settings.env, process.execPath, ...settings.nodeFlags, BIN, ...args]
    const p = track(opts.netns ? spawn('ip', ['netns', 'exec', opts.netns, ...cmd], { stdio: ['ignore', 'ignore', 'pipe'] }) : spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] }))
    p.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); if (stderr.length > 4_000_000) stderr = stderr.slice(-2_000_000) })
    p.once('exit', (code, sig) => {
      node.exits.push(code ?? (sig ? -1 : 0))
      if (!expectExit) unexpected++
    })
    return p
  }
  const node: ChaosNode = {
    nodeId: opts.nodeId, host, port, httpPort,
    proc: null as unknown as ChildProcess,
    exits: [],
    pid: () => node.proc.pid ?? -1,
    alive: () => node.proc.exitCode === null && node.proc.signalCode === null,
    log: () => stderr,
    unexpectedExits: () => unexpected,
    async health () {
      const res = await fetch(`http://${host}:${httpPort}/healthz`, { signal: AbortSignal.timeout(2000) })
      return { status: res.status, body: await res.json() as Record<string, unknown> }
    },
    async metrics () {
      return (await fetch(`http://${host}:${httpPort}/metrics`, { signal: AbortSignal.timeout(3000) })).text()
    },
    async kill (signal = 'SIGKILL') {
      if (!node.alive()) return
      if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') {
        expectExit = true
        const gone = new Promise((resolve) => node.proc.once('exit', resolve))
        try { process.kill(node.pid(), 'SIGCONT') } catch { /* gone */ }
        node.proc.kill(signal)
        await gone
      } else {
        process.kill(node.pid(), signal)
      }
    },
    async restart () {
      if (node.alive()) await node.kill('SIGKILL')
      expectExit = false
      node.proc = launch()
      await healthy()
    },
  }
  const healthy = async (): Promise<void> => {
    await waitFor(async () => {
      if (!node.alive()) throw new Error(`node ${opts.nodeId} exited during start:\n${stderr.slice(-3000)}`)
      return (await node.health()).status === 200
    }, `node ${opts.nodeId} healthy`, 30_000, 50)
  }
  node.proc = launch()
  await healthy()
  return node
}

export interface ChaosCluster {
  nodes: ChaosNode[]
  servers(): Array<{ host: string, port: number }>
  stop(): Promise<void>
  /** Waits until every live node lists `n` members. */
  waitMembers(n: number, timeoutMs?: number): Promise<void>
}

export async function startChaosCluster (redis: string, n: number, args: string[] = [], opts: { expectMembers?: number, firstIndex?: number } = {}): Promise<ChaosCluster> {
  const nodes: ChaosNode[] = []
  const cluster: ChaosCluster = {
    nodes,
    servers: () => nodes.map((x) => ({ host: x.host, port: x.port })),
    async stop () { await Promise.all(nodes.map((x) => x.kill('SIGKILL'))) },
    async waitMembers (count, timeoutMs = 15_000) {
      await waitFor(async () => {
        for (const x of nodes.filter((y) => y.alive())) {
          const { body } = await x.health()
          if (((body.members as unknown[] | undefined) ?? []).length !== count) return false
        }
        return true
      }, `${count} members`, timeoutMs, 100)
    },
  }
  try {
    for (let i = 0; i < n; i++) nodes.push(await startChaosNode({ redis, nodeId: `n${i + (opts.firstIndex ?? 1)}`, args }))
    await cluster.waitMembers(opts.expectMembers ?? n)
  } catch (err) {
    await cluster.stop()
    throw err
  }
  return cluster
}

/** Resident set size of a process in bytes, from /proc (0 if gone). */
export function rssOf (pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').trim().split(/\s+/)[1]) * 4096
  } catch { return 0 }
}

/** CPU time (user + system) a process has used, in seconds, from /proc (0 if gone). */
export function cpuSecondsOf (pid: number): number {
  try {
    // Fields after the parenthesised command name, which may itself contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
    return (Number(f[11]) + Number(f[12])) / 100
  } catch { return 0 }
}

/** Open file descriptors of a process (-1 if unknown). */
export function fdCountOf (pid: number): number {
  try { return readdirSync(`/proc/${pid}/fd`).length } catch { return -1 }
}
