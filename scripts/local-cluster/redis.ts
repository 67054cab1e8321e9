import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { findBinary, type Child, type Supervisor } from './supervisor.ts'
import { freePort, StartError, waitFor } from './wait.ts'

export const MASTER_NAME = 'mymaster'

export interface RedisTopology {
  primaryPort: number
  replicaPort: number
  sentinelPorts: number[]
  /** redis+sentinel://127.0.0.1:p1,…/mymaster */
  sentinelUrl: string
  /** redis://127.0.0.1:primaryPort, for brokers without Sentinel support. */
  primaryUrl: string
  children: Child[]
  /** Resolves once every Sentinel knows the replica and the other Sentinels (failover possible). */
  converged: Promise<void>
}

/**
 * Redis primary + one replica + three Sentinels on free loopback ports, data
 * under `dir`: the same shape as docker/docker-compose.yml. Resolves once
 * the replica is in sync and every Sentinel names the primary; `converged`
 * follows once the Sentinels know each other and the replica.
 */
export async function startRedisTopology (sup: Supervisor, dir: string): Promise<RedisTopology> {
  const redisServer = findBinary('redis-server')
  const redisSentinel = findBinary('redis-sentinel')
  if (!redisServer) throw new StartError('redis-server is not installed (Debian/Ubuntu: apt-get install -y redis-server)')
  if (!redisSentinel) throw new StartError('redis-sentinel is not installed (Debian/Ubuntu: apt-get install -y redis-sentinel)')

  const primaryPort = await freePort()
  const replicaPort = await freePort()
  const sentinelPorts = [await freePort(), await freePort(), await freePort()]
  const clients: Redis[] = []
  const client = (port: number): Redis => {
    const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 200, enableOfflineQueue: false })
    c.on('error', () => {})
    clients.push(c)
    return c
  }
  const ready = async (c: Redis): Promise<boolean> => {
    if (c.status === 'wait' || c.status === 'end') await c.connect().catch(() => {})
    return c.status === 'ready'
  }

  const server = (name: string, port: number, extra: string[]): Child => {
    const data = join(dir, name)
    mkdirSync(data, { recursive: true })
    return sup.start(name, redisServer, [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', data,
      // A throw-away development cluster: no snapshots, no AOF.
      '--save', '', '--appendonly', 'no',
      // Replicas sync at once instead of after the default 5 s batching delay.
      '--repl-diskless-sync-delay', '0',
      ...extra,
    ], { logFile: join(dir, `${name}.log`) })
  }

  try {
    const primary = server('redis-primary', primaryPort, [])
    const p = client(primaryPort)
    await waitFor('the Redis primary', async () => await ready(p) && (await p.ping()) === 'PONG', { watch: [primary] })

    const replica = server('redis-replica', replicaPort, ['--replicaof', '127.0.0.1', String(primaryPort)])
    const r = client(replicaPort)
    await waitFor('the replica to sync', async () => await ready(r) && /master_link_status:up/.test(await r.info('replication')), { watch: [primary, replica] })

    const sentinels = sentinelPorts.map((port, i) => {
      const name = `sentinel${i + 1}`
      const data = join(dir, name)
      mkdirSync(data, { recursive: true })
      // Sentinel rewrites this file as it learns the topology, so it lives in
      // the temp folder and is written fresh each start.
      const conf = join(data, 'sentinel.conf')
      writeFileSync(conf, [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${data}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 3000`,
        `sentinel failover-timeout ${MASTER_NAME} 10000`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        '',
      ].join('\n'))
      return sup.start(name, redisSentinel, [conf], { logFile: join(dir, `${name}.log`) })
    })
    const watch = [primary, replica, ...sentinels]
    const sentinelClients = sentinelPorts.map((port) => client(port))
    // Answering GET-MASTER-ADDR-BY-NAME is all a broker needs to connect.
    await Promise.all(sentinelClients.map((s, i) => waitFor(`sentinel${i + 1} to name the primary`, async () => {
      if (!await ready(s)) return false
      const addr = await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME) as [string, string] | null
      return addr?.[1] === String(primaryPort)
    }, { watch })))
    // Sentinels find the replica through the primary's INFO (every 10 s) and
    // each other through hello messages (every 2 s); until both are known a
    // failover could not happen. The brokers start meanwhile.
    const converged = Promise.all(sentinelClients.map((s, i) => waitFor(`sentinel${i + 1} to see the replica and 2 other Sentinels`, async () => {
      const info = pairs(await s.call('SENTINEL', 'MASTER', MASTER_NAME) as string[])
      return info['num-other-sentinels'] === '2' && info['num-slaves'] === '1' && !/down/.test(info.flags ?? '')
    }, { timeoutMs: 30_000, everyMs: 200, watch }))).then(() => undefined)
    void converged.catch(() => {}).finally(() => { for (const c of clients) c.disconnect() })

    return {
      primaryPort,
      replicaPort,
      sentinelPorts,
      sentinelUrl: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER_NAME}`,
      primaryUrl: `redis://127.0.0.1:${primaryPort}`,
      children: watch,
      converged,
    }
  } catch (err) {
    for (const c of clients) c.disconnect()
    throw err
  }
}

/** SENTINEL MASTER answers a flat [field, value, …] list. */
function pairs (flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1]
  return out
}
