import type { Logger } from './log.ts'

/** Where thingmesh publishes its own state. Clients may only read these (admins, once ACLs are on). */
export const SYS_TOPICS = {
  /** JSON array of live members with their load, as this node sees the cluster. */
  nodes: '$SYS/thingmesh/cluster/nodes',
  /** JSON load of one node. */
  load: (nodeId: string) => `$SYS/thingmesh/nodes/${nodeId}/load`,
  /** JSON scaling advice (broker/scaling.ts Recommendation), as this node computes it from every member's load. */
  scaling: '$SYS/thingmesh/cluster/scaling',
} as const

export interface SysPublisherOptions {
  nodeId: string
  intervalMs: number
  log: Logger
  members: () => Array<{ nodeId: string, brokerId: string, host: string, port: number, load: Record<string, number> }>
  load: () => Record<string, number>
  publish: (topic: string, payload: string) => Promise<void>
}

/**
 * Publishes the member list and this node's load on $SYS topics every
 * interval. $SYS traffic stays on the node that publishes it (see
 * cluster/bus.ts), so each node tells its own clients the whole cluster view.
 */
export function startSysPublisher (o: SysPublisherOptions): () => void {
  const tick = (): void => {
    const load = { ...o.load(), at: Date.now() }
    Promise.all([
      o.publish(SYS_TOPICS.nodes, JSON.stringify({ v: 1, nodes: o.members() })),
      o.publish(SYS_TOPICS.load(o.nodeId), JSON.stringify({ v: 1, nodeId: o.nodeId, ...load })),
    ]).catch((err: Error) => o.log.debug({ event: 'sys.publish_failed', err: err.message }, '$SYS publish failed'))
  }
  const timer = setInterval(tick, o.intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}
