import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { killWithTest } from './children.ts'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from './ports.ts'
import { waitFor } from './wait.ts'

export interface TestRedis {
  port: number
  url: string
  proc: ChildProcess
  client(): Redis
  stop(): Promise<void>
  /** Stops the server (SIGKILL by default); restart() brings it back on the same port, empty. */
  kill(signal?: NodeJS.Signals): Promise<void>
  restart(): Promise<void>
}

export function redisServerPath (): string {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim()
  if (!found) throw new Error('redis-server is not installed: run `apt-get install -y redis-server` (the tests start their own on a free port)')
  return found
}

/** A throw-away redis-server on a free loopback port, no persistence to disk. */
export async function startRedis (extraArgs: string[] = []): Promise<TestRedis> {
  const bin = redisServerPath()
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tm-redis-'))
  const clients: Redis[] = []
  const launch = (): ChildProcess => killWithTest(spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extraArgs], { stdio: 'ignore' }))
  const r: TestRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    proc: launch(),
    client () {
      const c = new Redis(port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 })
      c.on('error', () => {})
      clients.push(c)
      return c
    },
    async kill (signal = 'SIGKILL') {
      const p = r.proc
      if (p.exitCode !== null) return
      const exited = new Promise((resolve) => p.once('exit', resolve))
      p.kill(signal)
      await exited
    },
    async restart () {
      r.proc = launch()
      await ping()
    },
    async stop () {
      for (const c of clients) c.disconnect()
      await r.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    },
  }
  const ping = async (): Promise<void> => {
    const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await waitFor(async () => {
        try { await probe.connect() } catch { /* not yet */ }
        return probe.status === 'ready' && (await probe.ping()) === 'PONG'
      }, `redis-server on ${port}`, 10_000, 25)
    } finally { probe.disconnect() }
  }
  await ping()
  return r
}
