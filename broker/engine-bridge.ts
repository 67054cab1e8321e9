import { readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'
import type { NodeConfig } from './config.ts'
import type { Logger } from './log.ts'
import { createKeys } from './cluster/keys.ts'
import { connectRedis, defineScripts } from './cluster/redis.ts'
import { topicLevels } from './mqtt/topics.ts'
import {
  DEFAULT_ENGINE_OPTIONS, ENGINE_LUA_DIR, MemoryStore, parseInbound, RedisStore, ThingEngine,
  type EngineStore, type OutMessage,
} from '../engine/runtime/index.ts'

export interface EngineBridge {
  readonly engine: ThingEngine
  /** The `ingest` hook: durable append for engine topics; undefined (nothing to wait for) for the rest. */
  ingest(packet: { topic: string, payload: Buffer }, client: { id: string }): Promise<void> | undefined
  stop(): Promise<void>
}

export interface EngineBridgeOptions {
  config: NodeConfig
  brokerId: string
  log: Logger
  /** Publishes a packet through this node's broker (as the broker itself, no client). */
  publish(packet: { cmd: 'publish', topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, dup: false }): Promise<void>
  /** The broker's own steps of a publish, for the direct route (cluster nodes); without it every output goes through `publish`. */
  direct?: DirectRoute
  liveNodes(): string[]
}

/** The parts of the node's aedes broker that a publish by the broker itself goes through. */
export interface DirectRoute {
  broker: {
    readonly id: string
    counter: number
    readonly maxTopicLevels: number
    readonly mq: { emit(packet: object, done: (err?: Error | null) => void): unknown }
    readonly persistence: { storeRetained(packet: object): Promise<void> }
  }
  /** False only when no stored (persistent) subscription can match the topic right now (see RedisPersistence.mayQueue). */
  mayQueue(topic: string): boolean
}

interface DirectPacket {
  cmd: 'publish'
  brokerId: string
  brokerCounter: number
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  dup: false
  messageId: undefined
}

/**
 * Publishes engine outputs with the steps aedes' publish would take for them,
 * without its per-publish series (a Packet copy, the series state, the
 * offline-enqueue step and their promises): store if retained, then emit on
 * the broker's emitter (the cluster bus: local delivery, forwards, QoS1
 * durability). aedes' offline-enqueue step is skipped only when no stored
 * subscription can match the topic; otherwise, and while any output sent
 * through aedes is still on its way, an output goes through aedes as before,
 * so none overtakes an earlier one of the same topic. aedes' `published`
 * step has nothing to do for a publish without a client (broker/mqtt/hooks.ts),
 * and nothing listens to its 'publish' event.
 */
function directPublisher (route: DirectRoute, viaBroker: EngineBridgeOptions['publish']): (m: OutMessage) => Promise<void> {
  const { broker } = route
  let throughBroker = 0
  const done = (): void => { throughBroker-- }
  return (m) => {
    const payload = Buffer.from(m.payload)
    if (throughBroker > 0 || (m.qos > 0 && route.mayQueue(m.topic)) || topicLevels(m.topic) > broker.maxTopicLevels) {
      throughBroker++
      const p = viaBroker({ cmd: 'publish', topic: m.topic, payload, qos: m.qos, retain: m.retain, dup: false })
      p.then(done, done)
      return p
    }
    const packet: DirectPacket = { cmd: 'publish', brokerId: broker.id, brokerCounter: ++broker.counter, topic: m.topic, payload, qos: m.qos, retain: m.retain, dup: false, messageId: undefined }
    // Inline closures only: tsx keeps the names of named ones with an
    // Object.defineProperty per creation (docs/engine.md, 2026-12-02).
    if (!packet.retain) return new Promise<void>((resolve, reject) => { broker.mq.emit(packet, (err?: Error | null) => { if (err) reject(err); else resolve() }) })
    return broker.persistence.storeRetained(packet).then(() => new Promise<void>((resolve, reject) => {
      broker.mq.emit(packet, (err?: Error | null) => { if (err) reject(err); else resolve() })
    }))
  }
}

/** Backlog cap per partition log (entries not yet applied); past it writes are refused, never dropped. */
const BACKLOG_MAX = 1_000_000
const HISTORY_MAX = 10_000
const HISTORY_MAX_AGE_MS = 7 * 24 * 3600 * 1000

/**
 * The engine's three Redis connections: commands and scripts (the engine's
 * Lua scripts defined on it), the blocking log reader, the subscriber.
 */
export function connectEngineRedis (common: { url: string, commandTimeoutMs: number, log: Logger }, nodeId: string): { cmd: Redis, reader: Redis, sub: Redis } {
  // Ingest calls and commits are written when RedisStore sends them (an
  // ingest call gathers one event-loop turn of appends already). Through
  // ioredis' auto-pipeline each waited a turn, and then for the replies of
  // the pipeline before it (one pipeline in flight per connection): a device
  // write waited for the previous round's commits before it was even sent,
  // and a round's commits for the previous round's, so a write's way to its
  // change notification was up to two Redis round trips (with the scripts'
  // run time) longer. A partition's commits still go out in processing
  // order: written in call order on this one connection.
  const cmd = connectRedis({ ...common, name: `thingmesh:${nodeId}:engine`, direct: ['ingest', 'commit'] })
  // The blocking read too: nothing else uses that connection, and after a
  // round processed in several turns the auto-pipeline sent it a turn late.
  const reader = connectRedis({ ...common, name: `thingmesh:${nodeId}:engine-read`, direct: ['xread'] })
  const sub = connectRedis({ ...common, name: `thingmesh:${nodeId}:engine-sub`, subscriber: true })
  defineScripts(cmd, ENGINE_LUA_DIR)
  return { cmd, reader, sub }
}

/**
 * Wires the thing engine into a node: picks the store (Redis with --redis,
 * memory without), starts the engine after it caught up with the cluster's
 * definitions, and loads --import if given.
 */
export async function startEngine (o: EngineBridgeOptions): Promise<EngineBridge> {
  const { config, log } = o
  let store: EngineStore
  if (config.redis !== undefined) {
    const url = config.redis
    const { cmd, reader, sub } = connectEngineRedis({ url, commandTimeoutMs: config.redisCommandTimeoutMs, log }, config.nodeId)
    await Promise.all([cmd, reader, sub].map((r) => r.status === 'ready' ? undefined : new Promise((resolve) => r.once('ready', resolve))))
    const rs = new RedisStore({
      cmd, reader, sub,
      keys: createKeys(config.cluster).engine,
      partitions: config.partitions,
      backlogMax: BACKLOG_MAX,
      historyMax: HISTORY_MAX,
      historyMaxAgeMs: HISTORY_MAX_AGE_MS,
      leaseMs: config.engineLeaseMs,
    })
    await rs.subscribe()
    store = rs
  } else {
    store = new MemoryStore({ partitions: config.partitions, backlogMax: BACKLOG_MAX, historyMax: HISTORY_MAX, historyMaxAgeMs: HISTORY_MAX_AGE_MS })
  }
  const engine = new ThingEngine(store, {
    log,
    liveNodes: o.liveNodes,
    publish: o.direct !== undefined
      ? directPublisher(o.direct, o.publish)
      : (m: OutMessage) => o.publish({ cmd: 'publish', topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: m.retain, dup: false }),
  }, {
    ...DEFAULT_ENGINE_OPTIONS,
    brokerId: o.brokerId,
    partitions: config.partitions,
    leaseMs: config.engineLeaseMs,
    renewMs: Math.max(50, Math.floor(config.engineLeaseMs / 4)),
  })
  await engine.start()
  if (config.import !== undefined) {
    const bundle = JSON.parse(readFileSync(config.import, 'utf8')) as unknown
    const report = await engine.importModule(bundle)
    log.info({ event: 'engine.module_imported', file: config.import, version: report.version, appliedBy: report.appliedBy, missing: report.missing }, 'module imported')
  }
  let stopped: Promise<void> | null = null
  return {
    engine,
    ingest (packet, client) {
      const w = parseInbound(packet.topic)
      if (w === undefined) return undefined
      return engine.ingest(w, packet.payload, client.id)
    },
    stop () {
      stopped ??= (async () => {
        await engine.stop()
        await store.close()
      })()
      return stopped
    },
  }
}
