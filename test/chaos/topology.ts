// Redis test topology: one primary, two replicas, three Sentinels, all on
// free loopback ports, in a throw-away directory. Sentinels are configured
// with `down-after-milliseconds` (default 1000) and we wait until each knows
// the other two (`num-other-sentinels 2`) and both replicas are attached, so
// a fault injected right after start is seen by a complete quorum.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { freePort } from '../helpers/ports.ts'
import { redisServerPath } from '../helpers/redis.ts'
import { waitFor } from '../helpers/wait.ts'
import { track } from './reaper.ts'

export const MASTER_NAME = 'mymaster'

export interface RedisServer {
  port: number
  proc: ChildProcess
  pid(): number
  alive(): boolean
}

export interface SentinelTopology {
  servers: RedisServer[]
  sentinels: RedisServer[]
  /** redis+sentinel://… URL for thingmesh nodes. */
  url: string
  downAfterMs: number
  /** Port of the server Sentinel currently names as primary. */
  primaryPort(): Promise<number>
  primary(): Promise<RedisServer>
  /** A client on the current primary, found through Sentinel (follows failovers). */
  client(): Redis
  /** A direct client on one server port. */
  direct(port: number): Redis
  /** Resolves with the new primary port once Sentinel has switched away from `oldPort` and it accepts writes. */
  waitFailover(oldPort: number, timeoutMs?: number): Promise<number>
  stop(): Promise<void>
}

export interface TopologyOptions {
  downAfterMs?: number
  failoverTimeoutMs?: number
  /** Extra redis-server arguments for every data server (e.g. min-replicas-to-write). */
  serverArgs?: string[]
}

function launch (args: string[]): ChildProcess {
  const p = spawn(redisServerPath(), args, { stdio: 'ignore' })
  p.on('error', () => {})
  return track(p)
}

function server (port: number, proc: ChildProcess): RedisServer {
  return {
    port,
    proc,
    pid: () => proc.pid ?? -1,
    alive: () => proc.exitCode === null && proc.signalCode === null,
  }
}

async function ping (port: number, timeoutMs = 10_000): Promise<void> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await waitFor(async () => {
      if (probe.status !== 'ready') { try { await probe.connect() } catch { return false } }
      return (await probe.ping()) === 'PONG'
    }, `redis on ${port}`, timeoutMs, 25)
  } finally { probe.disconnect() }
}

export async function startTopology (opts: TopologyOptions = {}): Promise<SentinelTopology> {
  const downAfterMs = opts.downAfterMs ?? 1000
  const dir = mkdtempSync(join(tmpdir(), 'tm-chaos-'))
  const clients: Redis[] = []
  const servers: RedisServer[] = []
  const sentinels: RedisServer[] = []
  const stop = async (): Promise<void> => {
    for (const c of clients) c.disconnect()
    const all = [...sentinels, ...servers].filter((s) => s.alive())
    await Promise.all(all.map(async (s) => {
      const gone = new Promise((resolve) => s.proc.once('exit', resolve))
      // A SIGSTOPped server would ignore SIGKILL's siblings; SIGKILL always works, SIGCONT is harmless.
      try { process.kill(s.pid(), 'SIGCONT') } catch { /* already gone */ }
      s.proc.kill('SIGKILL')
      await gone
    }))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const primaryPort = await freePort()
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', ...(opts.serverArgs ?? [])]
    servers.push(server(primaryPort, launch(['--port', String(primaryPort), '--dbfilename', `d${primaryPort}.rdb`, ...common])))
    await ping(primaryPort)
    for (let i = 0; i < 2; i++) {
      const p = await freePort()
      servers.push(server(p, launch(['--port', String(p), '--dbfilename', `d${p}.rdb`, '--replicaof', '127.0.0.1', String(primaryPort), ...common])))
    }
    for (const s of servers) await ping(s.port)
    const direct = (port: number): Redis => {
      const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) })
      c.on('error', () => {})
      clients.push(c)
      return c
    }
    const pc = direct(primaryPort)
    await waitFor(async () => /connected_slaves:2/.test(await pc.info('replication')), 'two replicas attached', 10_000, 50)
    for (let i = 0; i < 3; i++) {
      const p = await freePort()
      const conf = join(dir, `sentinel-${p}.conf`)
      writeFileSync(conf, [
        `port ${p}`, 'bind 127.0.0.1', `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${downAfterMs}`,
        `sentinel failover-timeout ${MASTER_NAME} ${opts.failoverTimeoutMs ?? 3000}`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`, '',
      ].join('\n'))
      sentinels.push(server(p, launch([conf, '--sentinel'])))
    }
    for (const s of sentinels) await ping(s.port)
    for (const s of sentinels) {
      const sc = direct(s.port)
      await waitFor(async () => {
        const flat = await sc.call('SENTINEL', 'MASTER', MASTER_NAME) as string[]
        const info = Object.fromEntries(flat.flatMap((v, i) => i % 2 === 0 ? [[v, flat[i + 1]]] : []))
        return info['num-other-sentinels'] === '2' && info['num-slaves'] === '2'
      }, `sentinel ${s.port} to know 2 other sentinels and 2 replicas`, 20_000, 100)
      sc.disconnect()
    }
    const topo: SentinelTopology = {
      servers,
      sentinels,
      downAfterMs,
      url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER_NAME}`,
      async primaryPort () {
        for (const s of sentinels) {
          if (!s.alive()) continue
          const sc = new Redis(s.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
          sc.on('error', () => {})
          try {
            await sc.connect()
            const [, port] = await sc.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME) as string[]
            return Number(port)
          } catch { /* try the next sentinel */ } finally { sc.disconnect() }
        }
        throw new Error('no sentinel answered')
      },
      async primary () {
        const port = await topo.primaryPort()
        const s = servers.find((x) => x.port === port)
        if (!s) throw new Error(`primary port ${port} is not one of ours`)
        return s
      },
      client () {
        const c = new Redis({ sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: MASTER_NAME, maxRetriesPerRequest: 2, failoverDetector: true, sentinelRetryStrategy: (n) => Math.min(n * 100, 1000) })
        c.on('error', () => {})
        clients.push(c)
        return c
      },
      direct,
      async waitFailover (oldPort, timeoutMs = 20_000) {
        let port = oldPort
        await waitFor(async () => {
          port = await topo.primaryPort()
          if (port === oldPort) return false
          const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
          c.on('error', () => {})
          try {
            await c.connect()
            return /role:master/.test(await c.info('replication'))
          } catch { return false } finally { c.disconnect() }
        }, `failover away from ${oldPort}`, timeoutMs, 50)
        return port
      },
      stop,
    }
    return topo
  } catch (err) {
    await stop()
    throw err
  }
}
