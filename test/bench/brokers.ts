import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { freePort } from '../helpers/ports.ts'
import { waitFor } from '../helpers/wait.ts'
import { connect } from '../helpers/mqtt.ts'

/** A broker under test: one or more MQTT ports, and how to stop it. */
export interface BrokerUnderTest {
  name: string
  ports: number[]
  pids: number[]
  /** The Redis of a thingmesh cluster, for benchmarks that prepare data directly. */
  redisPort?: number
  /** The last lines each node wrote on stderr, to explain a failure. */
  logTail?(): string
  stop(): Promise<void>
}

/** Benchmarks measure the broker, not its abuse limits. */
export const NO_LIMITS = ['--log-level', 'warn', '--publish-rate-per-client', '0', '--connect-rate-per-ip', '0', '--max-connections-per-ip', '0', '--max-connections', '0', '--max-subscriptions-per-client', '0']

/**
 * BENCH_CPU_PROF=<dir>: thingmesh nodes run with --cpu-prof and are stopped
 * with SIGTERM so the profile is written (one .cpuprofile per node process).
 */
const CPU_PROF = process.env.BENCH_CPU_PROF
function profArgs (): { execArgv: string[], signal: NodeJS.Signals } {
  if (!CPU_PROF) return { execArgv: [], signal: 'SIGKILL' }
  mkdirSync(CPU_PROF, { recursive: true })
  return { execArgv: ['--cpu-prof', '--cpu-prof-dir', CPU_PROF], signal: 'SIGTERM' }
}

export async function standalone (): Promise<BrokerUnderTest> {
  const { execArgv, signal } = profArgs()
  const n = await startNodeProcess({ args: NO_LIMITS, execArgv })
  return { name: 'thingmesh standalone', ports: [n.port], pids: [n.proc.pid!], stop: async () => { await n.kill(signal) } }
}

export async function cluster (size: number): Promise<BrokerUnderTest> {
  const { execArgv, signal } = profArgs()
  const redis: TestRedis = await startRedis()
  const nodes: NodeProcess[] = []
  try {
    for (let i = 0; i < size; i++) nodes.push(await startNodeProcess({ redis: redis.url, nodeId: `b${i + 1}`, args: [...NO_LIMITS, '--allow-anonymous', 'true'], execArgv }))
    // Every node must know the others' interest sets before the clock starts.
    await waitFor(async () => {
      for (const n of nodes) if (((await n.health()).body.members as unknown[]).length !== size) return false
      return true
    }, `${size} nodes to see each other`, 15_000, 50)
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL')))
    await redis.stop()
    throw err
  }
  return {
    name: `thingmesh ${size}-node`,
    ports: nodes.map((n) => n.port),
    pids: nodes.map((n) => n.proc.pid!),
    redisPort: redis.port,
    logTail: () => nodes.map((n) => `${n.nodeId}${n.proc.exitCode !== null || n.proc.signalCode !== null ? ` (exited ${n.proc.exitCode ?? n.proc.signalCode})` : ''}:\n${n.log().trim().split('\n').slice(-5).join('\n')}`).join('\n'),
    stop: async () => { await Promise.all(nodes.map((n) => n.kill(signal))); await redis.stop() },
  }
}

const AEDES_SCRIPT = fileURLToPath(new URL('./aedes-plain.ts', import.meta.url))

/** One process of test/bench/aedes-plain.ts; resolves once it listens. */
async function aedesProcess (redisUrl?: string): Promise<{ port: number, proc: ChildProcess }> {
  const port = await freePort()
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const proc = spawn(process.execPath, ['--import', 'tsx', AEDES_SCRIPT, String(port), ...(redisUrl ? [redisUrl] : [])], { stdio: ['ignore', 'pipe', 'inherit'], env })
  await new Promise<void>((resolve, reject) => {
    let out = ''
    proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('listening')) resolve() })
    proc.once('exit', (code) => reject(new Error(`aedes-plain exited with ${code}`)))
  })
  return { port, proc }
}

async function killProc (proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGKILL')
  await exited
}

/** One plain in-memory Aedes node: the baseline every ratio is taken against. */
export async function aedes (): Promise<BrokerUnderTest> {
  const a = await aedesProcess()
  return { name: 'aedes', ports: [a.port], pids: [a.proc.pid!], stop: () => killProc(a.proc) }
}

/** The plain Aedes + Redis cluster recipe (mqemitter-redis, aedes-persistence-redis). */
export async function aedesRedis (size: number): Promise<BrokerUnderTest> {
  const redis = await startRedis()
  const procs: ChildProcess[] = []
  const ports: number[] = []
  try {
    for (let i = 0; i < size; i++) { const a = await aedesProcess(redis.url); procs.push(a.proc); ports.push(a.port) }
  } catch (err) {
    await Promise.all(procs.map(killProc))
    await redis.stop()
    throw err
  }
  return {
    name: `aedes+redis ${size}-node`,
    ports,
    pids: procs.map((p) => p.pid!),
    stop: async () => { await Promise.all(procs.map(killProc)); await redis.stop() },
  }
}

export function mosquittoPath (): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) {
    if (spawnSync('test', ['-x', p]).status === 0) return p
  }
  return null
}

export async function mosquitto (): Promise<BrokerUnderTest | null> {
  const bin = mosquittoPath()
  if (!bin) return null
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tm-mosq-'))
  const conf = join(dir, 'm.conf')
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\nmax_inflight_messages 0\n`)
  const proc: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  await waitFor(async () => { try { (await connect(port)).end(true); return true } catch { return false } }, 'mosquitto', 5000)
  return { name: 'mosquitto', ports: [port], pids: [proc.pid!], stop: () => killProc(proc) }
}

/** Every broker the bench knows, by the key BENCH_BROKERS selects on. */
export const BROKERS: Record<string, () => Promise<BrokerUnderTest | null>> = {
  standalone,
  cluster2: () => cluster(2),
  cluster3: () => cluster(3),
  aedes,
  'aedes-redis2': () => aedesRedis(2),
  mosquitto,
}
