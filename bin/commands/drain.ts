import { Redis } from 'ioredis'
import { createKeys } from '../../broker/cluster/keys.ts'
import { parseSentinelUrl } from '../../broker/cluster/redis.ts'

export interface DrainOptions {
  nodeId: string
  redis: string
  cluster: string
  spreadMs?: number
  timeoutMs: number
}

/**
 * `thingmesh drain`: asks one node, over the cluster's control channel, to
 * hand its partitions over, move its clients to the other nodes and exit;
 * returns once it has left the membership (0), or 1 on timeout.
 */
export async function runDrain (o: DrainOptions, out: (line: string) => void): Promise<number> {
  const redis = o.redis.startsWith('redis+sentinel://')
    ? new Redis({ ...parseSentinelUrl(o.redis), maxRetriesPerRequest: 1, lazyConnect: true })
    : new Redis(o.redis, { maxRetriesPerRequest: 1, lazyConnect: true })
  redis.on('error', () => {})
  try {
    await redis.connect()
    const keys = createKeys(o.cluster)
    const members = async (): Promise<string[]> => Object.values(await redis.hgetall(keys.nodes)).map((j) => {
      try { return (JSON.parse(j) as { nodeId: string }).nodeId } catch { return '' }
    })
    if (!(await members()).includes(o.nodeId)) {
      out(`thingmesh drain: no live node "${o.nodeId}" in cluster "${o.cluster}"; live: ${(await members()).join(', ') || 'none'}`)
      return 2
    }
    const msg = { v: 1, t: 'drain', node: o.nodeId, ...(o.spreadMs === undefined ? {} : { spreadMs: o.spreadMs }) }
    const heard = await redis.publish(keys.controlChannel, JSON.stringify(msg))
    out(`drain requested for ${o.nodeId} (${heard} node(s) listening); waiting for it to leave...`)
    const deadline = Date.now() + o.timeoutMs
    while (Date.now() < deadline) {
      if (!(await members()).includes(o.nodeId)) { out(`${o.nodeId} drained and left the cluster`); return 0 }
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    out(`thingmesh drain: ${o.nodeId} still a member after ${o.timeoutMs} ms`)
    return 1
  } finally {
    redis.disconnect()
  }
}
