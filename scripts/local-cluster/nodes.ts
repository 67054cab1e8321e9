import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Child, Supervisor } from './supervisor.ts'
import { freePort, httpGet, StartError, waitFor } from './wait.ts'

const BIN = fileURLToPath(new URL('../../bin/thingmesh', import.meta.url))

export interface LocalNode {
  nodeId: string
  mqttPort: number
  httpPort: number
  child: Child
}

export interface NodesResult {
  nodes: LocalNode[]
  /** The Redis URL the nodes were finally started with. */
  redisUrl: string
  /** Set when the Sentinel URL was refused and the plain primary URL used instead. */
  fallbackReason?: string
}

/**
 * The environment of a node: ours, without loaders a parent (tap, tsx) put in
 * NODE_OPTIONS, plus the settings of a development cluster behind HAProxy.
 * They go through the environment, not flags, because a node ignores
 * THINGMESH_* variables it does not know, so this script also runs brokers
 * from before an option existed.
 */
function nodeEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    // Trying the cluster with `npx mqtt pub` should need no user; it listens on loopback only.
    THINGMESH_ALLOW_ANONYMOUS: 'true',
    // Behind HAProxy every client has HAProxy's address: per-address limits
    // would cap the whole cluster, so they are off (nodes see no PROXY header).
    THINGMESH_MAX_CONNECTIONS_PER_IP: '0',
    THINGMESH_CONNECT_RATE_PER_IP: '0',
    // The container's memory settings (docker/Dockerfile, docs/deployment.md "Memory settings").
    MALLOC_MMAP_THRESHOLD_: '131072',
    ...process.env,
  }
  delete env.NODE_OPTIONS
  return env
}

/** As the container's entrypoint: THINGMESH_MAX_OLD_SPACE_MB, default 1024; empty leaves V8's default. */
function oldSpaceFlag (): string[] {
  const mb = process.env.THINGMESH_MAX_OLD_SPACE_MB ?? '1024'
  return mb === '' ? [] : [`--max-old-space-size=${mb}`]
}

async function startNode (sup: Supervisor, dir: string, nodeId: string, redisUrl: string, extraArgs: string[]): Promise<LocalNode> {
  const mqttPort = await freePort()
  const httpPort = await freePort()
  const child = sup.start(nodeId, process.execPath, [
    ...oldSpaceFlag(),
    BIN, 'start', '--host', '127.0.0.1', '--port', String(mqttPort), '--http-port', String(httpPort),
    '--redis', redisUrl, '--node-id', nodeId, ...extraArgs,
  ], { logFile: join(dir, `${nodeId}.log`), env: nodeEnv() })
  return { nodeId, mqttPort, httpPort, child }
}

/**
 * Starts `count` nodes on the Sentinel URL, all at once. If the broker
 * refuses that URL (a config error naming --redis, from a release without
 * Sentinel support) or the nodes never become healthy with it, they are
 * stopped and started again on the primary's plain URL. Resolves when every
 * node is healthy and sees all the others.
 */
export async function startNodes (sup: Supervisor, dir: string, opts: { count: number, sentinelUrl: string, primaryUrl: string, watch: Child[], extraArgs?: string[] }): Promise<NodesResult> {
  const extra = opts.extraArgs ?? []
  const ids = Array.from({ length: opts.count }, (_, i) => `local${i + 1}`)
  const launch = (url: string): Promise<LocalNode[]> => Promise.all(ids.map((id) => startNode(sup, dir, id, url, extra)))
  let redisUrl = opts.sentinelUrl
  let fallbackReason: string | undefined
  let nodes = await launch(redisUrl)
  try {
    await waitForCluster(nodes, opts.watch, 15_000)
  } catch (err) {
    if (err instanceof StartError && err.child && !nodes.some((n) => n.child === err.child)) throw err
    // Fall back only when the URL is what failed. Any other crash is a real
    // failure, reported with its log.
    const dead = nodes.find((n) => !n.child.alive())
    const said = dead ? dead.child.tail(10).split('\n').filter((l) => !l.startsWith('{')).join('\n') : ''
    if (dead && !/--redis\b/.test(said)) throw err
    fallbackReason = `the broker did not start on ${opts.sentinelUrl} (${dead ? `it exited: ${lastLine(said)}` : 'not healthy within 15 s'})`
    await Promise.all(nodes.map((n) => sup.stop(n.child, 3000)))
    redisUrl = opts.primaryUrl
    nodes = await launch(redisUrl)
    await waitForCluster(nodes, opts.watch, 30_000)
  }
  return { nodes, redisUrl, fallbackReason }
}

async function waitForCluster (nodes: LocalNode[], watchToo: Child[], timeoutMs: number): Promise<void> {
  await waitFor(`${nodes.length} nodes to be healthy and see each other`, async () => {
    for (const n of nodes) {
      const res = await httpGet(`http://127.0.0.1:${n.httpPort}/healthz`)
      if (res?.status !== 200) return false
      const members = (JSON.parse(res.body) as { members?: unknown[] }).members
      if (!Array.isArray(members) || members.length !== nodes.length) return false
    }
    return true
  }, { timeoutMs, watch: [...nodes.map((n) => n.child), ...watchToo] })
}

function lastLine (text: string): string {
  return text.trim().split('\n').pop() ?? ''
}
