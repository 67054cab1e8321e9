// The plan's Redis topology (one primary, two replicas, three Sentinels) for
// the campaign. The processes are started by the shared helper
// (test/helpers/sentinel.ts, also used by the redis-ha suites); this module
// only adds what fault injection needs: PIDs, the reaper that kills them if
// the harness is interrupted, and a Sentinel-following client.
import type { ChildProcess } from 'node:child_process'
import { Redis } from 'ioredis'
import { MASTER_NAME, startSentinel, type RedisProcess } from '../helpers/sentinel.ts'
import { track } from './reaper.ts'

export { MASTER_NAME }

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

const withPid = (r: RedisProcess): RedisServer => {
  track(r.proc)
  return { port: r.port, proc: r.proc, alive: r.alive, pid: () => r.proc.pid ?? -1 }
}

export async function startTopology (opts: TopologyOptions = {}): Promise<SentinelTopology> {
  const downAfterMs = opts.downAfterMs ?? 1000
  const setup = await startSentinel({ replicas: 2, downAfterMs, failoverTimeoutMs: opts.failoverTimeoutMs, serverArgs: opts.serverArgs })
  const servers = setup.servers.map(withPid)
  const sentinels = setup.sentinels.map(withPid)
  const clients: Redis[] = []
  return {
    servers,
    sentinels,
    downAfterMs,
    url: setup.url,
    primaryPort: async () => (await setup.primary()).port,
    // Same order as setup.servers: the helper already found which one is primary.
    primary: async () => servers[setup.servers.indexOf(await setup.primary())],
    client () {
      const c = new Redis({ sentinels: sentinels.map((s) => ({ host: '127.0.0.1', port: s.port })), name: MASTER_NAME, maxRetriesPerRequest: 2, failoverDetector: true, sentinelRetryStrategy: (n) => Math.min(n * 100, 1000) })
      c.on('error', () => {})
      clients.push(c)
      return c
    },
    direct: setup.direct,
    waitFailover: async (oldPort, timeoutMs = 20_000) => (await setup.waitFailover(oldPort, timeoutMs)).port,
    async stop () {
      for (const c of clients) c.disconnect()
      await setup.stop()
    },
  }
}
