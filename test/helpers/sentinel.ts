// A Redis Sentinel topology of real processes on free loopback ports: one
// primary, `replicas` replicas and three Sentinels (quorum 2). start resolves
// only when every Sentinel knows the other two (`num-other-sentinels 2`) and
// every replica, so a fault injected right after start meets a full quorum.
// stop() SIGCONTs and SIGKILLs everything it started and removes its files.
import { spawn, type ChildProcess } from 'node:child_process'
import { killWithTest } from './children.ts'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import mqtt, { type MqttClient } from 'mqtt'
import { parseSentinelUrl } from '../../broker/cluster/redis.ts'
import { close, connect } from './mqtt.ts'
import { startNodeProcess, stopAll, type NodeProcess } from './node.ts'
import { freePort } from './ports.ts'
import { redisServerPath } from './redis.ts'
import { waitFor } from './wait.ts'

export const MASTER_NAME = 'mymaster'

export interface RedisProcess {
  port: number
  proc: ChildProcess
  alive(): boolean
  kill(signal?: NodeJS.Signals): Promise<void>
}

export interface SentinelSetup {
  servers: RedisProcess[]
  sentinels: RedisProcess[]
  /** redis+sentinel://… URL for `thingmesh start --redis`. */
  url: string
  /** The server Sentinel names as primary now. */
  primary(): Promise<RedisProcess>
  /** Resolves with the new primary once Sentinel names a server other than `oldPort` and it says role:master. */
  waitFailover(oldPort: number, timeoutMs?: number): Promise<RedisProcess>
  /** A direct client on one server (not following failovers). */
  direct(port: number): Redis
  stop(): Promise<void>
}

export interface SentinelOptions {
  replicas?: number
  downAfterMs?: number
  failoverTimeoutMs?: number
  serverArgs?: string[]
}

function proc (port: number, args: string[]): RedisProcess {
  const p = killWithTest(spawn(redisServerPath(), args, { stdio: 'ignore' }))
  p.on('error', () => {})
  const r: RedisProcess = {
    port,
    proc: p,
    alive: () => p.exitCode === null && p.signalCode === null,
    async kill (signal = 'SIGKILL') {
      if (!r.alive()) return
      const gone = new Promise((resolve) => p.once('exit', resolve))
      // A SIGSTOPped process still dies of SIGKILL; SIGCONT first lets SIGTERM work too.
      try { process.kill(p.pid!, 'SIGCONT') } catch { /* gone */ }
      p.kill(signal)
      await gone
    },
  }
  return r
}

async function ping (port: number, timeoutMs = 15_000): Promise<void> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on('error', () => {})
  try {
    await waitFor(async () => {
      if (probe.status !== 'ready') { try { await probe.connect() } catch { return false } }
      return (await probe.ping()) === 'PONG'
    }, `redis on ${port}`, timeoutMs, 25)
  } finally { probe.disconnect() }
}

function pairs (flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1]
  return out
}

export async function startSentinel (opts: SentinelOptions = {}): Promise<SentinelSetup> {
  const replicas = opts.replicas ?? 1
  const dir = mkdtempSync(join(tmpdir(), 'tm-sentinel-'))
  const servers: RedisProcess[] = []
  const sentinels: RedisProcess[] = []
  const clients: Redis[] = []
  const stop = async (): Promise<void> => {
    for (const c of clients) c.disconnect()
    await Promise.all([...sentinels, ...servers].map((s) => s.kill('SIGKILL')))
    rmSync(dir, { recursive: true, force: true })
  }
  const direct = (port: number): Redis => {
    const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: (n) => Math.min(n * 50, 500) })
    c.on('error', () => {})
    clients.push(c)
    return c
  }
  try {
    const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0', ...(opts.serverArgs ?? [])]
    const primaryPort = await freePort()
    servers.push(proc(primaryPort, ['--port', String(primaryPort), '--dbfilename', `d${primaryPort}.rdb`, ...common]))
    await ping(primaryPort)
    for (let i = 0; i < replicas; i++) {
      const p = await freePort()
      servers.push(proc(p, ['--port', String(p), '--dbfilename', `d${p}.rdb`, '--replicaof', '127.0.0.1', String(primaryPort), ...common]))
    }
    for (const s of servers) await ping(s.port)
    const pc = direct(primaryPort)
    await waitFor(async () => new RegExp(`connected_slaves:${replicas}\\b`).test(await pc.info('replication')), `${replicas} replica(s) attached`, 20_000, 50)
    for (let i = 0; i < 3; i++) {
      const p = await freePort()
      const conf = join(dir, `sentinel-${p}.conf`)
      writeFileSync(conf, [
        `port ${p}`, 'bind 127.0.0.1', `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${primaryPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${MASTER_NAME} ${opts.failoverTimeoutMs ?? 3000}`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`, '',
      ].join('\n'))
      sentinels.push(proc(p, [conf, '--sentinel']))
    }
    for (const s of sentinels) await ping(s.port)
    for (const s of sentinels) {
      const sc = direct(s.port)
      await waitFor(async () => {
        const info = pairs(await sc.call('SENTINEL', 'MASTER', MASTER_NAME) as string[])
        return info['num-other-sentinels'] === '2' && info['num-slaves'] === String(replicas)
      }, `sentinel ${s.port} to know 2 other sentinels and ${replicas} replica(s)`, 30_000, 100)
      sc.disconnect()
    }
    const primaryPortNow = async (): Promise<number> => {
      for (const s of sentinels) {
        if (!s.alive()) continue
        const sc = new Redis(s.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 2000 })
        sc.on('error', () => {})
        try {
          await sc.connect()
          const [, port] = await sc.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME) as string[]
          return Number(port)
        } catch { /* next sentinel */ } finally { sc.disconnect() }
      }
      throw new Error('no sentinel answered')
    }
    const byPort = (port: number): RedisProcess => {
      const s = servers.find((x) => x.port === port)
      if (!s) throw new Error(`primary port ${port} is not one of ours`)
      return s
    }
    return {
      servers,
      sentinels,
      url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER_NAME}`,
      primary: async () => byPort(await primaryPortNow()),
      async waitFailover (oldPort, timeoutMs = 30_000) {
        let port = oldPort
        await waitFor(async () => {
          port = await primaryPortNow()
          if (port === oldPort) return false
          const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
          c.on('error', () => {})
          try {
            await c.connect()
            return /role:master/.test(await c.info('replication'))
          } catch { return false } finally { c.disconnect() }
        }, `Sentinel failover away from ${oldPort}`, timeoutMs, 50)
        return byPort(port)
      },
      direct,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------------------
// The R2 scenario, shared by test/cluster/redis-ha*.test.ts: a QoS1 stream
// through three nodes on a Sentinel URL while the Redis primary is SIGKILLed.

export interface FailoverFigures {
  /** Sentinel's switch: kill → a new server says role:master. */
  failoverMs: number
  /** A Sentinel-following client's SET: kill → first success. */
  redisWriteGapMs: number
  /** kill → every node answers /healthz 200 and a fresh QoS1 publish on node1 reaches a subscriber on node2. */
  serviceBackMs: number
  /** Longest time without any stream PUBACK, over the kill (-1: none after it): write unavailability as publishers see it. */
  pubackGapMs: number
  sent: number
  acked: number
  refused: number
  cleanLost: number
  persistentLost: number
  persistentDuplicates: number
  nodeExits: number
  /** Fatal or uncaught log lines naming MaxRetriesPerRequestError. */
  maxRetriesCrashes: number
  /** Log lines of commands rejected by ioredis retry exhaustion (R3 wants 0). */
  maxRetriesRejections: number
  /** Nodes not answering /healthz 200 when the run ends. */
  unhealthyAtEnd: number
  /** `cluster.node_dead` log lines: live nodes declared dead (none died in this scenario). */
  nodesDeclaredDead: number
  /** Redis connections (node:name) whose last logged event is redis.down: never reconnected. */
  connectionsStillDown: string[]
  publisherDisconnects: number
}

export interface FailoverOptions {
  nodeArgs: string[]
  ratePerPublisher?: number
  publishers?: number
  /** Publishing before the kill and after service is back. */
  warmupMs?: number
  afterMs?: number
  /** Called with each step, for diagnosing a slow run. */
  progress?: (step: string) => void
  /** How long each recovery wait may take before it is recorded as -1. */
  recoveryLimitMs?: number
  /** Receives every node's log before teardown. */
  logs?: (logs: Array<{ nodeId: string, log: string }>) => void
}

const fetchStatus = async (port: number): Promise<number> => {
  try { return (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })).status } catch { return 0 }
}


export interface HaCluster {
  setup: SentinelSetup
  nodes: NodeProcess[]
  /** An MQTT client that keeps reconnecting (also after a refused CONNECT) and is closed by the teardown. */
  client(clientId: string, port: number, clean: boolean): Promise<MqttClient>
}

/**
 * The topology of the HA tests: a primary and two replicas (so a WAIT 1 can
 * succeed again after a failover without restarting the dead server), three
 * Sentinels, three nodes on the Sentinel URL. Runs `fn`, hands the nodes'
 * logs to `logs`, and tears everything down.
 */
export async function withHaCluster<T> (o: { nodeArgs: string[], logs?: FailoverOptions['logs'], progress?: (step: string) => void }, fn: (c: HaCluster) => Promise<T>): Promise<T> {
  const setup = await startSentinel({ replicas: 2 })
  o.progress?.('sentinel topology up')
  const nodes: NodeProcess[] = []
  const clients: MqttClient[] = []
  try {
    for (let i = 1; i <= 3; i++) nodes.push(await startNodeProcess({ redis: setup.url, nodeId: `node${i}`, args: o.nodeArgs }))
    await waitFor(async () => {
      for (const n of nodes) if (((await n.health()).body.members as unknown[]).length !== 3) return false
      return true
    }, '3 nodes to see each other', 30_000, 50)
    o.progress?.('3 nodes up')
    const client = (clientId: string, port: number, clean: boolean): Promise<MqttClient> => new Promise((resolve, reject) => {
      // While Redis is away nodes refuse CONNECT (0x03 server unavailable); MQTT.js stops reconnecting after a refusal unless told not to.
      const c = mqtt.connect({ host: '127.0.0.1', port, clientId, clean, protocolVersion: 4, keepalive: 10, reconnectPeriod: 100, reconnectOnConnackError: true, connectTimeout: 3000, resubscribe: true })
      c.on('error', () => {})
      clients.push(c)
      const timer = setTimeout(() => reject(new Error(`${clientId} did not connect`)), 15_000)
      c.once('connect', () => { clearTimeout(timer); resolve(c) })
    })
    return await fn({ setup, nodes, client })
  } finally {
    o.logs?.(nodes.map((n) => ({ nodeId: n.nodeId, log: n.log() })))
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})))
    await stopAll(nodes)
    await setup.stop()
  }
}

/**
 * R7: `count` retained QoS1 messages published on node1; the primary is
 * SIGKILLed `killAfterMs` after the last PUBACK; after the failover a new
 * subscriber on node2 counts the retained messages it gets.
 */
export async function runRetainedKill (o: { nodeArgs: string[], count?: number, killAfterMs?: number, logs?: FailoverOptions['logs'] }): Promise<{ published: number, retainedAfter: number, failoverMs: number }> {
  const count = o.count ?? 1000
  return withHaCluster(o, async ({ setup, nodes, client }) => {
    const [n1, n2] = nodes
    const pub = await client('r7-pub', n1.port, true)
    for (let i = 0; i < count; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, count - i) }, (_, k) => pub.publishAsync(`r7/t${i + k}`, `v${i + k}`, { qos: 1, retain: true })))
    }
    const lastAck = Date.now()
    await pub.endAsync(true)
    const primary = await setup.primary()
    // The fault schedule: the kill lands a fixed time after the last PUBACK.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, lastAck + (o.killAfterMs ?? 50) - Date.now())))
    await primary.kill('SIGKILL')
    const killAt = Date.now()
    await setup.waitFailover(primary.port)
    const failoverMs = Date.now() - killAt
    const sub = await client('r7-check', n2.port, true)
    const seen = new Set<string>()
    sub.on('message', (topic, _p, packet) => { if (packet.retain) seen.add(topic) })
    await sub.subscribeAsync('r7/#', { qos: 1 })
    await waitFor(() => seen.size >= count, 'every retained message', 10_000, 20).catch(() => {})
    return { published: count, retainedAfter: seen.size, failoverMs }
  })
}

/** The R2 scenario: a QoS1 stream through three nodes while the Redis primary is SIGKILLed; measures and tears down. */
export async function runPrimaryKill (o: FailoverOptions): Promise<FailoverFigures> {
  const step = o.progress ?? (() => {})
  let timer: NodeJS.Timeout | undefined
  return withHaCluster({ nodeArgs: o.nodeArgs, logs: o.logs, progress: step }, async ({ setup, nodes, client: mk }) => {
    try {
      const [n1, n2, n3] = nodes
      // Subscribers on node3; publishers on node1 and node2: every message crosses nodes.
      const cleanSeen = new Set<string>()
      const persistSeen = new Map<string, number>()
      const cleanSub = await mk('ha-clean', n3.port, true)
      cleanSub.on('message', (_t, p) => cleanSeen.add(p.toString()))
      await cleanSub.subscribeAsync('ha/s/#', { qos: 1 })
      let persistSub = await mk('ha-persist', n3.port, false)
      const onPersist = (_t: string, p: Buffer): void => { const k = p.toString(); persistSeen.set(k, (persistSeen.get(k) ?? 0) + 1) }
      persistSub.on('message', onPersist)
      await persistSub.subscribeAsync('ha/s/#', { qos: 1 })
      const pubCount = o.publishers ?? 4
      const pubs: Array<{ c: MqttClient, id: string, seq: number, inflight: number, closes: number }> = []
      for (let i = 0; i < pubCount; i++) {
        const id = `ha-p${i}`
        const c = await mk(id, (i % 2 === 0 ? n1 : n2).port, true)
        const p = { c, id, seq: 0, inflight: 0, closes: 0 }
        c.on('close', () => { p.closes++ })
        pubs.push(p)
      }
      // Everything is subscribed cluster-wide before the stream starts (interest is announced asynchronously).
      await waitFor(async () => {
        const probeMsg = `warm-${Date.now()}`
        await pubs[0].c.publishAsync('ha/s/warm', probeMsg, { qos: 1 })
        await waitFor(() => cleanSeen.has(probeMsg) && persistSeen.has(probeMsg), 'warm-up message', 1000, 10)
        return true
      }, 'subscribers reachable from node1', 20_000, 100)
      step('clients connected and subscribed')

      const acked = new Set<string>()
      const ackTimes: number[] = []
      let sent = 0
      let refused = 0
      const rate = o.ratePerPublisher ?? 50
      let publishing = true
      const started = Date.now()
      timer = setInterval(() => {
        if (!publishing) return
        const due = Math.floor((Date.now() - started) * rate / 1000)
        for (const p of pubs) {
          while (p.seq < due) {
            p.seq++
            // A disconnected publisher skips (the message was never sent, so it cannot be lost).
            if (!p.c.connected || p.inflight >= 500) continue
            const payload = `${p.id}:${p.seq}`
            p.inflight++
            sent++
            p.c.publish(`ha/s/${p.id}`, payload, { qos: 1 }, (err) => {
              p.inflight--
              if (err) { refused++; return }
              acked.add(payload)
              ackTimes.push(Date.now())
            })
          }
        }
      }, 10)

      await waitFor(() => acked.size >= pubCount * rate * (o.warmupMs ?? 3000) / 2000, 'stream acknowledged before the kill', 30_000, 50)
      const primary = await setup.primary()
      const killAt = Date.now()
      await primary.kill('SIGKILL')
      step(`primary ${primary.port} killed after ${acked.size} acks`)

      // Each wait gives up after `o.recoveryLimitMs` (-1 in the figures) so the rest is still measured and reported.
      const limit = o.recoveryLimitMs ?? 30_000
      const since = (what: string) => (): number => { step(what); return Date.now() - killAt }
      const failover = setup.waitFailover(primary.port, limit).then(since('failover seen'), () => -1)
      const writeGap = waitFor(async () => {
        // A new Sentinel-resolved connection per attempt: measures Redis, not one client's reconnect logic.
        const c = new Redis({ ...parseSentinelUrl(setup.url), lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 500, connectTimeout: 500, retryStrategy: () => null, sentinelRetryStrategy: () => null })
        c.on('error', () => {})
        try { await c.connect(); await c.set('ha:probe', String(Date.now())); return true } catch { return false } finally { c.disconnect() }
      }, 'a Sentinel client to write again', limit, 20).then(since('redis writable'), () => -1)
      let fresh = 0
      const serviceBack = waitFor(async () => {
        for (const n of nodes) if (await fetchStatus(n.httpPort) !== 200) return false
        const tag = `fresh-${++fresh}`
        const sub = await connect(n2.port, { clientId: `ha-fs-${fresh}`, connectTimeout: 2000 })
        const pub = await connect(n1.port, { clientId: `ha-fp-${fresh}`, connectTimeout: 2000 }).catch(async (err) => { await close(sub); throw err })
        try {
          const got = new Promise<boolean>((resolve) => {
            sub.on('message', (_t, p) => { if (p.toString() === tag) resolve(true) })
            setTimeout(() => resolve(false), 2000)
          })
          await sub.subscribeAsync('ha/fresh', { qos: 1 })
          await Promise.race([pub.publishAsync('ha/fresh', tag, { qos: 1 }), new Promise((_r, reject) => setTimeout(() => reject(new Error('no PUBACK')), 2000))])
          return await got
        } finally { await close(sub, pub) }
      }, 'nodes serving again (health 200 and a cross-node QoS1 publish)', limit, 100).then(since('service back'), () => -1)
      const [failoverMs, redisWriteGapMs, serviceBackMs] = await Promise.all([failover, writeGap, serviceBack])

      // Keep the stream going a while after service is back, then stop and settle.
      const backAt = Date.now()
      await waitFor(() => Date.now() - backAt >= (o.afterMs ?? 3000), 'post-failover stream', 60_000, 50)
      publishing = false
      clearInterval(timer)
      await waitFor(() => pubs.every((p) => p.inflight === 0), 'outstanding PUBACKs', 20_000, 50).catch(() => {})
      for (const p of pubs) await p.c.endAsync(true).catch(() => {})

      step(`publishers stopped: sent ${sent}, acked ${acked.size}`)
      const ackedStream = [...acked]
      await waitFor(() => ackedStream.every((k) => cleanSeen.has(k)), 'clean subscriber complete', 5000, 50).catch(() => {})
      // The persistent subscriber leaves and comes back on another node: what was queued for it must all arrive.
      await persistSub.endAsync(false).catch(() => {})
      // A node that never recovered would only hide the queue: reconnect where /healthz says 200 (node1 if none does).
      const order = [n1, n2, n3]
      const statuses = await Promise.all(order.map((n) => fetchStatus(n.httpPort)))
      const target = order[statuses.indexOf(200)] ?? n1
      step(`persistent subscriber reconnects to ${target.nodeId} (health ${statuses.join('/')})`)
      try {
        persistSub = await mk('ha-persist', target.port, false)
        persistSub.on('message', onPersist)
        await waitFor(() => ackedStream.every((k) => persistSeen.has(k)), 'persistent subscriber complete after reconnect', 20_000, 50).catch(() => {})
      } catch (err) { step(`persistent subscriber could not reconnect: ${(err as Error).message}`) }

      // Longest stretch without any stream PUBACK that ends after the kill (-1: no PUBACK after it).
      const times = ackTimes.sort((a, b) => a - b)
      let pubackGapMs = -1
      for (let i = 1; i < times.length; i++) if (times[i] > killAt) pubackGapMs = Math.max(pubackGapMs, times[i] - times[i - 1])
      const unhealthy = (await Promise.all(nodes.map((n) => fetchStatus(n.httpPort)))).filter((st) => st !== 200).length
      const logs = nodes.map((n) => n.log()).join('\n')
      return {
        failoverMs,
        redisWriteGapMs,
        serviceBackMs,
        pubackGapMs,
        sent,
        acked: ackedStream.length,
        refused,
        cleanLost: ackedStream.filter((k) => !cleanSeen.has(k)).length,
        persistentLost: ackedStream.filter((k) => !persistSeen.has(k)).length,
        persistentDuplicates: [...persistSeen.values()].filter((n) => n > 1).length,
        nodeExits: nodes.filter((n) => n.proc.exitCode !== null || n.proc.signalCode !== null).length,
        maxRetriesCrashes: logs.split('\n').filter((l) => /MaxRetriesPerRequestError|max retries per request/.test(l) && /"level":60|uncaught|unhandled/i.test(l)).length,
        maxRetriesRejections: (logs.match(/MaxRetriesPerRequestError|max retries per request limit/g) ?? []).length,
        unhealthyAtEnd: unhealthy,
        nodesDeclaredDead: (logs.match(/"event":"cluster.node_dead"/g) ?? []).length,
        connectionsStillDown: stillDown(logs),
        publisherDisconnects: pubs.reduce((s, p) => s + p.closes, 0),
      }
    } finally {
      clearInterval(timer)
    }
  })
}

function stillDown (logs: string): string[] {
  const last = new Map<string, string>()
  for (const line of logs.split('\n')) {
    const m = /"event":"(redis\.down|redis\.up)","connection":"([^"]+)"/.exec(line)
    if (m) last.set(m[2], m[1])
  }
  return [...last].filter(([, e]) => e === 'redis.down').map(([c]) => c)
}

/** The figures as t.comment lines. */
export function describeFigures (label: string, f: FailoverFigures): string[] {
  return [
    `${label}: Sentinel failover ${f.failoverMs} ms; Redis write unavailability ${f.redisWriteGapMs} ms; service back ${f.serviceBackMs} ms; longest PUBACK gap ${f.pubackGapMs} ms (-1 = none after the kill)`,
    `${label}: sent ${f.sent}, acked ${f.acked}, not acked ${f.refused}, publisher disconnects ${f.publisherDisconnects}; acked but lost: persistent ${f.persistentLost}, clean ${f.cleanLost}; persistent duplicates ${f.persistentDuplicates}; commands rejected by retry exhaustion ${f.maxRetriesRejections}; live nodes declared dead ${f.nodesDeclaredDead}; nodes unhealthy at end ${f.unhealthyAtEnd}; Redis connections never back: ${f.connectionsStillDown.join(', ') || 'none'}`,
  ]
}
