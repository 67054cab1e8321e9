import { readFileSync } from 'node:fs'
import type { NodeConfig } from './config.ts'
import type { Logger } from './log.ts'
import { createKeys } from './cluster/keys.ts'
import { connectRedis, defineScripts } from './cluster/redis.ts'
import {
  DEFAULT_ENGINE_OPTIONS, ENGINE_LUA_DIR, MemoryStore, parseInbound, RedisStore, ThingEngine,
  type EngineStore, type OutMessage,
} from '../engine/runtime/index.ts'

export interface EngineBridge {
  readonly engine: ThingEngine
  /** The `ingest` hook: durable append for engine topics, nothing for the rest. */
  ingest(packet: { topic: string, payload: Buffer }, client: { id: string }): Promise<void>
  stop(): Promise<void>
}

export interface EngineBridgeOptions {
  config: NodeConfig
  brokerId: string
  log: Logger
  /** Publishes a packet through this node's broker (as the broker itself, no client). */
  publish(packet: { cmd: 'publish', topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean, dup: false }): Promise<void>
  liveNodes(): string[]
}

const RESOLVED = Promise.resolve()
/** Backlog cap per partition log (entries not yet applied); past it writes are refused, never dropped. */
const BACKLOG_MAX = 1_000_000
const HISTORY_MAX = 10_000
const HISTORY_MAX_AGE_MS = 7 * 24 * 3600 * 1000

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
    const common = { url, commandTimeoutMs: config.redisCommandTimeoutMs, log }
    const cmd = connectRedis({ ...common, name: `thingmesh:${config.nodeId}:engine` })
    const reader = connectRedis({ ...common, name: `thingmesh:${config.nodeId}:engine-read` })
    const sub = connectRedis({ ...common, name: `thingmesh:${config.nodeId}:engine-sub`, subscriber: true })
    defineScripts(cmd, ENGINE_LUA_DIR)
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
    publish: (m: OutMessage) => o.publish({ cmd: 'publish', topic: m.topic, payload: Buffer.from(m.payload), qos: m.qos, retain: m.retain, dup: false }),
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
      if (w === undefined) return RESOLVED
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
