import type { NodeConfig } from '../../broker/config.ts'
import type { Logger } from '../../broker/log.ts'
import { startNode, surviveUnhandledRejections, type RunningNode } from '../../broker/node.ts'

/** Exit status of a node that was declared dead by its cluster and does not rejoin (--on-fenced exit, or a rejoin that failed). */
const EXIT_FENCED = 3

/**
 * `thingmesh start`: runs one node, and, after the cluster declared it dead
 * (cut off from Redis or starved longer than --dead-after-ms), starts it
 * again in this process as a new incarnation on the same ports, the way
 * EMQX and HiveMQ heal after a netsplit. The fenced node has already cut its
 * Redis links and torn itself down (its clients dropped without wills, its
 * engine leases handed back or lost, every timer stopped); the new one has a
 * new brokerId, a fresh membership record, subscription index and interest
 * set, and its clients reconnect and take their sessions back from Redis.
 * With --on-fenced exit the process exits 3 instead, for a supervisor that
 * prefers crash-only restarts. Never returns.
 */
export async function runStart (config: NodeConfig, log: Logger): Promise<void> {
  let node: RunningNode | null = await startNode(config, log)
  const metrics = node.metrics
  surviveUnhandledRejections(log, metrics)

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ event: 'node.stopping', signal }, 'stopping')
    const force = setTimeout(() => { log.error({ event: 'node.stop_timeout' }, 'graceful stop took over 10 s; exiting'); process.exit(1) }, 10_000)
    force.unref()
    // Between incarnations (the fenced one torn down, the next one waiting for Redis) there is nothing to stop.
    if (node === null) process.exit(0)
    node.stop().then(() => process.exit(0), (err: Error) => { log.error({ event: 'node.stop_failed', err: err.message }); process.exit(1) })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  for (;;) {
    const ended = await node.stopped
    // A drain (requested by `thingmesh drain` or the admin topic) or a signal ends the process.
    if (ended.reason !== 'fenced' || stopping) process.exit(0)
    const previous = node.brokerId
    if (config.onFenced === 'exit') {
      log.fatal({ event: 'node.exit_fenced', brokerId: previous }, 'exiting after being declared dead by the cluster (--on-fenced exit)')
      process.exit(EXIT_FENCED)
    }
    // The same ports (0 was resolved at the first start), and no second --import: the module is in Redis already.
    const again: NodeConfig = Object.freeze({
      ...config,
      port: node.mqttPort,
      httpPort: node.httpPort,
      tlsPort: node.tlsPort ?? config.tlsPort,
      wsPort: node.wsPort ?? config.wsPort,
      import: undefined,
    })
    node = null
    let next: RunningNode
    try {
      next = await startNode(again, log, { metrics })
    } catch (err) {
      // A half-started node cannot be unwound from here: crash-only it is.
      log.fatal({ event: 'cluster.rejoin_failed', previous, err: (err as Error).message }, 'could not start again after being fenced; exiting')
      process.exit(EXIT_FENCED)
    }
    node = next
    metrics.rejoins.inc()
    log.warn({ event: 'cluster.rejoined', brokerId: node.brokerId, previous, tookMs: Date.now() - ended.since }, 'rejoined the cluster as a new incarnation after being declared dead')
  }
}
