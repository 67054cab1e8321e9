import { randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { Aedes } from 'aedes'
import type { NodeConfig } from './config.ts'
import type { Logger } from './log.ts'
import { createMetrics, type Metrics } from './metrics.ts'
import { startHttp } from './http/server.ts'
import { ClusterRuntime } from './cluster-runtime.ts'
import { createHooks, type AedesClient } from './mqtt/hooks.ts'
import { startEngine, type DirectRoute, type EngineBridge } from './engine-bridge.ts'
import { parseInbound, type EngineApi } from '../engine/runtime/index.ts'
import { guardSocket, type Violation } from './mqtt/wire-guard.ts'
import { installWirePatches, THINGMESH_BROKER } from './mqtt/wire-patches.ts'
import { publishQos1Directly, publishQos1InTurn } from './mqtt/qos1-inbound.ts'
import type { ShedAction } from './mqtt/slow-consumers.ts'
import { stateOf } from './mqtt/client-state.ts'
import { startSysPublisher } from './sys-topics.ts'
import { Authenticator, ensureFirstAdmin, MemoryUserStore, RedisUserStore, type UserStore } from './auth/index.ts'
import { startListeners, connInfoOf } from './listeners/index.ts'
import { ClusterState, createAdminService, interceptAdminRequests, MemoryAuditLog, RedisAuditLog, StandaloneState } from './admin/index.ts'

export interface RunningNode {
  readonly config: NodeConfig
  readonly brokerId: string
  readonly mqttPort: number
  readonly httpPort: number
  readonly tlsPort: number | undefined
  readonly wsPort: number | undefined
  readonly metrics: Metrics
  readonly broker: Aedes
  /** The thing engine (admin layer entry point). */
  readonly engine: EngineApi
  /** Resolves once the node has stopped, drained, or torn itself down after being fenced. */
  readonly stopped: Promise<Stopped>
  /** Planned removal: hand partitions over, move clients to other nodes over spreadMs, leave. */
  drain(spreadMs?: number): Promise<void>
  /** Graceful stop: stop accepting, publish wills, disconnect, leave the cluster. */
  stop(): Promise<void>
}

/** How a node ended, and when its shutdown began (for a fenced node: when it learnt it was declared dead). */
export interface Stopped {
  readonly reason: 'stopped' | 'drained' | 'fenced'
  readonly since: number
}

export interface StartOptions {
  /** Metrics to reuse: a node rejoining after a fence keeps its process's counters. */
  metrics?: Metrics
}

/** aedes client ids count, per MQTT 3.1.1 we accept up to 65535 bytes [MQTT-3.1.3-5 allows more than 23]. */
const MAX_CLIENT_ID_LENGTH = 256
/** aedes reads `client.duplicates[brokerId]` to drop "old" packets; we dedupe exactly instead (hooks.authorizeForward). */
const NEVER_SEEN: Record<string, number> = new Proxy({}, { get: () => 0, set: () => true, deleteProperty: () => true })

/**
 * The last line of defence for a running node process (bin/cli.ts installs
 * it once the node is up; a library user keeps Node's default). Node 20 exits
 * on an unhandled rejection, and every one we have seen was a background
 * Redis command (a timeout while Redis stalled) whose promise one path left
 * unhandled, here or inside aedes: a whole broker, with all its clients, died
 * for one failed write (chaos R12). Unlike an uncaught exception, a rejection
 * unwinds no synchronous stack half way, so the process state is as sound as
 * after a handled failure. It is logged with a code and counted (so tests and
 * alerts see it as the bug it is), and the node goes on. The sites themselves
 * are fixed where found; this is not a substitute.
 */
export function surviveUnhandledRejections (log: Logger, metrics: Metrics): void {
  process.on('unhandledRejection', (reason) => {
    metrics.unhandledRejections.inc()
    const err = reason instanceof Error ? reason : new Error(String(reason))
    log.error({ event: 'node.unhandled_rejection', code: 'BROKER_UNHANDLED_REJECTION', err: err.message, stack: err.stack }, 'unhandled promise rejection; continuing')
  })
}

/**
 * One thingmesh node: an aedes broker, its listeners, and — with a Redis URL —
 * the cluster runtime that makes it one of many.
 */
export async function startNode (config: NodeConfig, log: Logger, opts: StartOptions = {}): Promise<RunningNode> {
  installWirePatches()
  const metrics = opts.metrics ?? createMetrics()
  // The incarnation suffix makes packet keys unique across restarts of a node.
  const brokerId = `${config.nodeId}~${randomBytes(4).toString('hex')}`
  log = log.child({ nodeId: config.nodeId })

  let cluster: ClusterRuntime | null = null
  if (config.redis) {
    cluster = new ClusterRuntime(config, brokerId, log, metrics)
    log.info({ event: 'node.connecting_redis', redis: redactUrl(config.redis) }, 'waiting for Redis')
    await cluster.connect()
  }

  const users: UserStore = cluster ? new RedisUserStore(cluster.cmd, cluster.keys) : new MemoryUserStore()
  if (config.adminPassword) await ensureFirstAdmin(users, config.adminUsername, config.adminPassword, log)
  const auth = new Authenticator({
    users, log, metrics,
    allowAnonymous: config.allowAnonymous,
    standaloneLoopback: !cluster && isLoopback(config.host),
    failuresPerMinute: config.authFailuresPerMinute,
    cacheTtlMs: config.authCacheTtlMs,
    concurrency: config.authConcurrency,
  })
  const localSessions = new Set<string>()

  let broker: Aedes
  let engineBridge: EngineBridge | null = null
  let engineReady: (b: EngineBridge) => void = () => {}
  const engineStarted = new Promise<EngineBridge>((resolve) => { engineReady = resolve })
  // aedes keeps its connected clients in `clients`, untyped in its .d.ts.
  const clients = (): Record<string, AedesClient> => (broker as unknown as { clients: Record<string, AedesClient> }).clients
  const hooks = createHooks({
    log,
    metrics,
    auth,
    connInfo: connInfoOf,
    limits: config,
    localSessions,
    sessions: cluster?.sessionHooks() ?? null,
    localClient: (id) => clients()[id],
    // Engine writes that arrive before the engine runs wait for it (their PUBACK with them).
    // Other topics have nothing to make durable: no promise per publish (issue 8). The bridge
    // parses the topic itself; only a write arriving before it exists is parsed here.
    ingest: (packet, client) => engineBridge !== null
      ? engineBridge.ingest(packet, client)
      : parseInbound(packet.topic) === undefined ? undefined : engineStarted.then((b) => b.ingest(packet, client)),
  })
  broker = await Aedes.createBroker({
    id: brokerId,
    mq: cluster?.bus as never,
    persistence: cluster?.persistence as never,
    connectTimeout: config.connectTimeoutMs,
    // Enforced by hooks.preConnect, which caps instead of refusing.
    keepaliveLimit: 0,
    drainTimeout: config.drainTimeoutMs,
    maxClientBufferBytes: config.maxClientBufferBytes,
    onSlowConsumer: (clientId: string, action: ShedAction, bufferedBytes: number) => {
      metrics.slowConsumers.inc({ action })
      if (action === 'disconnected') log.warn({ event: 'client.slow_consumer', clientId, bufferedBytes, code: 'BROKER_SLOW_CONSUMER' }, 'client disconnected: too much unsent data (raise --max-client-buffer-bytes if it is a legitimate burst)')
    },
    maxClientsIdLength: MAX_CLIENT_ID_LENGTH,
    maxInflightInbound: config.maxInflightInbound,
    ...hooks,
  } as never)
  ;(broker as unknown as Record<symbol, boolean>)[THINGMESH_BROKER] = true
  // Client QoS 1 publishes skip aedes' offline-enqueue step where no stored subscription can match (issue 8).
  if (cluster) publishQos1Directly(broker, (topic) => cluster!.persistence.mayQueue(topic))

  broker.on('client', (client) => {
    cluster?.clientRegistered(client as unknown as AedesClient)
  })
  broker.on('clientDisconnect', (client) => {
    cluster?.clientClosed(client as unknown as AedesClient)
  })
  broker.on('clientError', (client, err) => {
    log.debug({ event: 'client.error', clientId: client?.id, err: err.message }, 'client error')
  })
  broker.on('connectionError', (_client, err) => {
    log.debug({ event: 'connection.error', err: err.message }, 'connection error before CONNECT')
  })

  let mqttPort = 0
  const adminState = cluster
    ? new ClusterState({
      cmd: cluster.cmd, sub: cluster.sub, keys: cluster.keys, brokerId,
      members: () => cluster!.membership?.members ?? [],
      persistence: cluster.persistence,
      waitReleased: async (id, epoch, ms) => (await cluster!.sessions.waitReleased(id, epoch, ms)) === 'released',
      closeLocal: (id, epoch) => {
        const c = clients()[id]
        if (!c || c.closed || stateOf(c).epoch !== epoch) return false
        c.close()
        return true
      },
    }, log)
    : new StandaloneState({
      nodeId: config.nodeId, brokerId, host: config.host, port: () => mqttPort,
      load: () => load(),
      clients: () => clients(),
      persistence: (broker as unknown as { persistence: never }).persistence,
      on: (event, fn) => { broker.on(event, fn as never) },
      forgetSession: (id) => { localSessions.delete(id) },
    })
  const admin = createAdminService({
    nodeId: config.nodeId,
    state: adminState,
    users,
    audit: cluster ? new RedisAuditLog(cluster.cmd, cluster.keys.audit, config.auditMax) : new MemoryAuditLog(config.auditMax),
    engine: () => engineBridge?.engine,
  }, log, metrics)
  interceptAdminRequests(broker as never, admin, log)

  // Every transport (TCP, TLS, WebSocket) goes through the wire guard [S1, S2, S8].
  const handle = broker.handle
  // One function for every socket, not a closure per connection (issue 8).
  const onViolation = (reason: Violation, detail: string, conn: object): void => {
    const info = connInfoOf(conn)
    metrics.rejected.inc({ reason })
    log.info({ event: 'client.wire_violation', reason, detail, remote: info?.address, transport: info?.transport, code: reason === 'too_large' ? 'BROKER_PACKET_TOO_LARGE' : 'BROKER_MALFORMED_PACKET' }, 'connection closed for a bad packet')
  }
  const listeners = await startListeners(config, log, metrics, (conn) => {
    guardSocket(conn, config, onViolation)
    const client = handle(conn as never, undefined as never) as unknown as { duplicates: unknown }
    client.duplicates = NEVER_SEEN
    publishQos1InTurn(client as never)
  })
  mqttPort = listeners.ports.mqtt

  const load = (): Record<string, number> => ({
    connections: broker.connectedClients,
    rssBytes: process.memoryUsage.rss(),
  })
  if (cluster) {
    cluster.attach({
      localClient: (id) => clients()[id],
      localClients: () => Object.values(clients()),
      publish: (packet) => new Promise((resolve, reject) => broker.publish(packet as never, (err?: Error) => err ? reject(err) : resolve())),
      load,
    }, { host: config.host, port: mqttPort, httpPort: config.httpPort })
    await cluster.start()
  }
  const stopSys = startSysPublisher({
    nodeId: config.nodeId,
    intervalMs: config.heartbeatMs,
    log,
    load,
    members: () => cluster
      ? cluster.membership.members.map((m) => ({ nodeId: m.nodeId, brokerId: m.brokerId, host: m.host, port: m.port, load: m.load }))
      : [{ nodeId: config.nodeId, brokerId, host: config.host, port: mqttPort, load: load() }],
    publish: (topic, payload) => new Promise((resolve, reject) => broker.publish({ topic, payload: Buffer.from(payload), qos: 0, retain: false } as never, (err?: Error) => err ? reject(err) : resolve())),
  })

  engineBridge = await startEngine({
    config, brokerId, log,
    publish: (packet) => new Promise((resolve, reject) => broker.publish(packet as never, (err?: Error) => err ? reject(err) : resolve())),
    direct: cluster ? { broker: broker as unknown as DirectRoute['broker'], mayQueue: (topic) => cluster!.persistence.mayQueue(topic) } : undefined,
    liveNodes: () => cluster ? cluster.membership.members.map((m) => m.brokerId) : [brokerId],
  })
  engineReady(engineBridge)
  const engine = engineBridge

  let listening = true
  const http = await startHttp(config.host, config.httpPort, {
    health: () => {
      const base = { nodeId: config.nodeId, brokerId, mode: cluster ? 'cluster' : 'standalone', listening, draining: stopping !== null }
      if (!cluster) return { ok: listening, ...base }
      const c = cluster.health()
      return { ...base, ...c, ok: listening && c.ok }
    },
    metrics: async () => {
      metrics.connections.set(broker.connectedClients)
      let subs = 0
      for (const c of Object.values(clients())) subs += Object.keys(c.subscriptions).length
      metrics.subscriptions.set(subs)
      if (cluster) {
        metrics.persistentSubscriptions.set(cluster.persistence.index.subscriptionCount)
        metrics.busSent.set(cluster.bus.stats.sent)
        metrics.busReceived.set(cluster.bus.stats.received)
        metrics.busDropped.set(cluster.bus.stats.dropped)
        try { metrics.retained.set(await cluster.cmd.hlen(cluster.keys.retained)) } catch { /* Redis away: keep the last value */ }
      } else {
        metrics.clusterSize.set(1)
      }
      return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }
    },
  })

  log.info({ event: 'node.started', brokerId, mqtt: `${config.host}:${mqttPort}`, tls: listeners.ports.tls, ws: listeners.ports.ws, anonymous: auth.anonymousAllowed(), http: `${config.host}:${http.port}`, mode: cluster ? 'cluster' : 'standalone' }, 'thingmesh node listening')

  let stopping: Promise<void> | null = null
  let markStopped: (s: Stopped) => void = () => {}
  const stopped = new Promise<Stopped>((resolve) => { markStopped = resolve })
  /**
   * The three ways out. stop(): a shutdown, whose clients' wills are
   * published (they lose their broker). drain(): a planned removal:
   * partitions are handed over first, then clients are disconnected a few at
   * a time over `spreadMs` without wills (they reconnect to the other nodes
   * at once). fenced: the cluster declared this incarnation dead; the cluster
   * runtime has already cut its Redis links, so the teardown writes nothing
   * in its name (the caller may start a new incarnation on the same ports).
   */
  const shutdown = (how: { mode: 'stop' | 'drain' | 'fenced', spreadMs: number }): Promise<void> => {
    stopping ??= (async () => {
      const since = Date.now()
      const drain = how.mode === 'drain'
      listening = false
      stopSys()
      listeners.close()
      log.info({ event: how.mode === 'fenced' ? 'node.fenced_teardown' : drain ? 'node.draining' : 'node.stopping', clients: broker.connectedClients, spreadMs: how.spreadMs }, how.mode === 'fenced' ? 'fenced: dropping clients and cluster state' : drain ? 'draining' : 'stopping')
      if (how.mode === 'fenced') {
        // The survivors publish (or published) these clients' wills: none
        // from here. The clients reconnect and take their sessions back from Redis.
        for (const c of Object.values(clients())) {
          stateOf(c).takenOver = true
          c._disconnected = true
          c.close()
        }
        // Its writes carry partition fencing tokens: a lease lost while we
        // were cut off refuses them, and one still ours is handed back.
        await engine.stop()
      } else if (drain) {
        await engine.stop()
        await disconnectSpread(Object.values(clients()), how.spreadMs)
      } else {
        // Publish the wills of the clients we are about to disconnect while
        // Redis is still up [issue 3 defect 13], then close them without
        // letting aedes publish them a second time.
        const connected = Object.values(clients()) as Array<AedesClient & { will?: object | null }>
        await Promise.allSettled(connected.map(async (c) => {
          if (c.will && !stateOf(c).takenOver) {
            const will = c.will
            c._disconnected = true
            await new Promise<void>((resolve) => broker.publish(will as never, () => resolve()))
          }
        }))
        // The engine hands its partitions over while the broker can still publish its outbox.
        await engine.stop()
      }
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      http.server.close()
      if (cluster) {
        // Let queued Redis commands (session releases, acks) flush before leaving.
        await cluster.stop()
      }
      const reason = how.mode === 'fenced' ? 'fenced' : drain ? 'drained' : 'stopped'
      log.info({ event: 'node.' + reason, brokerId }, `thingmesh node ${reason}`)
      markStopped({ reason, since })
    })()
    return stopping
  }
  if (cluster) {
    cluster.onDrain = (spreadMs) => { void shutdown({ mode: 'drain', spreadMs: spreadMs ?? config.drainSpreadMs }) }
    cluster.onFenced = () => { void shutdown({ mode: 'fenced', spreadMs: 0 }) }
  }

  return {
    config, brokerId, mqttPort, tlsPort: listeners.ports.tls, wsPort: listeners.ports.ws, httpPort: http.port, metrics, broker, engine: engine.engine,
    stopped,
    stop: () => shutdown({ mode: 'stop', spreadMs: 0 }),
    drain: (spreadMs = config.drainSpreadMs) => shutdown({ mode: 'drain', spreadMs }),
  }
}

/** Closes clients evenly over `spreadMs`, as planned departures: no wills. */
async function disconnectSpread (list: AedesClient[], spreadMs: number): Promise<void> {
  const gap = list.length > 0 ? spreadMs / list.length : 0
  for (const c of list) {
    if (!c.closed) {
      stateOf(c).takenOver = true
      c._disconnected = true
      c.close()
    }
    if (gap >= 1) await new Promise((resolve) => setTimeout(resolve, gap))
  }
}

/** Mosquitto 2's rule: anonymous access is a default only where nothing but this machine can connect. */
function isLoopback (host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

function redactUrl (url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@')
}
