// Setting up and tearing down what a test runs on, whatever happens inside.
import { startTopology, type SentinelTopology, type TopologyOptions } from './topology.ts'
import { startChaosCluster, type ChaosCluster } from './cluster.ts'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Node logs of every test are kept here (evidence for failures); the report names the directory. */
export const LOG_DIR = process.env.CHAOS_LOG_DIR ?? join('/tmp', `thingmesh-chaos-logs-${process.pid}`)

export function saveLogs (tag: string, cluster: ChaosCluster): void {
  mkdirSync(LOG_DIR, { recursive: true })
  for (const n of cluster.nodes) writeFileSync(join(LOG_DIR, `${tag}-${n.nodeId}.log`), n.log())
}

export interface Env { topo: SentinelTopology, cluster: ChaosCluster }

/** The default plan topology: Redis primary, 2 replicas, 3 Sentinels, and `nodes` broker nodes. */
export async function withEnv<T> (opts: { nodes?: number, args?: string[], topology?: TopologyOptions, tag?: string }, fn: (env: Env) => Promise<T>): Promise<T> {
  const topo = await startTopology(opts.topology)
  let cluster: ChaosCluster | null = null
  try {
    cluster = await startChaosCluster(topo.url, opts.nodes ?? 3, opts.args ?? [])
    return await fn({ topo, cluster })
  } finally {
    if (cluster) saveLogs(opts.tag ?? 'env', cluster)
    await cluster?.stop()
    await topo.stop()
  }
}

/** A lighter topology for the abuse tests, which do not fault Redis: one redis-server. */
export async function withSimpleEnv<T> (opts: { nodes?: number, args?: string[], tag?: string }, fn: (env: { redis: TestRedis, cluster: ChaosCluster }) => Promise<T>): Promise<T> {
  const redis = await startRedis()
  let cluster: ChaosCluster | null = null
  try {
    cluster = await startChaosCluster(redis.url, opts.nodes ?? 1, opts.args ?? [])
    return await fn({ redis, cluster })
  } finally {
    if (cluster) saveLogs(opts.tag ?? 'env', cluster)
    await cluster?.stop()
    await redis.stop()
  }
}

/** The fault schedule is time-based by nature: wait until `t0 + atMs`. */
export function at (t0: number, atMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + atMs - Date.now())))
}

export const fmt = (n: number, digits = 0): string => n.toFixed(digits)
export const pct = (a: number, b: number): string => b === 0 ? '0%' : `${(100 * a / b).toFixed(2)}%`
