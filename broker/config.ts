import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { z } from 'zod'
import { ThingmeshError } from './errors.ts'

/**
 * Every node option, declared once: its key, CLI flag, environment variable,
 * default and meaning. The CLI, the env reader, the config-file reader and the
 * README's configuration table are all derived from this list.
 */
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max)
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')])

export const optionSpecs = {
  host: { schema: z.string().min(1), default: '127.0.0.1', doc: 'address the MQTT listener binds to' },
  port: { schema: int(0, 65535), default: 1883, doc: 'MQTT TCP port (0 picks a free port)' },
  httpPort: { schema: int(0, 65535), default: 8080, doc: 'HTTP port for /healthz and /metrics (0 picks a free port)' },
  redis: { schema: z.string().regex(/^(rediss?|redis\+sentinel):\/\/[^\s]+$/, 'must be redis://host:port, rediss://… or redis+sentinel://host:port,host:port/masterName').optional(), default: undefined, doc: 'Redis URL; set it to run as a cluster node, leave it out for a standalone in-memory broker. redis+sentinel://h1:26379,h2:26379/mymaster follows Sentinel failovers' },
  nodeId: { schema: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1-64 letters, digits, _ . or -'), default: undefined, doc: 'stable name of this node (default: hostname-port)' },
  cluster: { schema: z.string().regex(/^[A-Za-z0-9_.-]{1,32}$/, 'use 1-32 letters, digits, _ . or -'), default: 'thingmesh', doc: 'cluster name; prefixes every Redis key, so several clusters can share a Redis' },
  logLevel: { schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), default: 'info', doc: 'log level (logs are JSON on stderr)' },
  maxPacketSize: { schema: int(64, 268435455), default: 1048576, doc: 'largest MQTT packet accepted after CONNECT, bytes; larger ones disconnect the client before the body is read' },
  maxConnectPacketSize: { schema: int(64, 1048576), default: 8192, doc: 'largest packet accepted before CONNECT completes, bytes' },
  connectTimeoutMs: { schema: int(100, 600000), default: 5000, doc: 'a socket that has not sent CONNECT by then is closed' },
  keepaliveLimit: { schema: int(0, 65535), default: 300, doc: 'largest keepalive (s) the broker grants: a client asking for more, or for none, is accepted and closed after 1.5 × this long without a packet (0 = no cap)' },
  clusterLinks: { schema: bool, default: true, doc: 'QoS 0 and QoS 1 publishes between nodes go over direct node-to-node TCP links instead of Redis pub/sub (QoS 1 acknowledged by the receiving node once delivered, sent again through Redis if the link drops first); QoS 2, QoS 1 with --redis-wait-replicas, and anything while a link is down go through Redis and its replay log' },
  linkHost: { schema: z.string().min(1), default: '127.0.0.1', doc: 'address the cluster link listener binds to (0.0.0.0 for nodes on other hosts or in containers)' },
  linkPort: { schema: int(0, 65535), default: 0, doc: 'cluster link TCP port (0 picks a free port; each node announces its own in its membership record)' },
  linkAdvertise: { schema: z.string().regex(/^[^\s:[\]]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$|^[0-9a-fA-F.]*:[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$/, 'must be host, host:port, an IPv6 address or [IPv6]:port').optional(), default: undefined, doc: 'host or host:port other nodes connect to for this node\'s link (default: --link-host, or this host\'s first non-internal IPv4 when that is 0.0.0.0; port: the bound one)' },
  clusterSecret: { schema: z.string().min(16, 'must be at least 16 characters').max(1024), default: undefined, doc: 'shared secret that authenticates cluster links (HMAC); default: a random one the first node stores in Redis (whoever can read that Redis owns the cluster anyway). Prefer the environment variable' },
  heartbeatMs: { schema: int(100, 60000), default: 1000, doc: 'how often a node renews its membership in Redis' },
  deadAfterMs: { schema: int(300, 600000), default: 3000, doc: 'a node silent for this long is declared dead; its clients\' wills are published' },
  onFenced: { schema: z.enum(['rejoin', 'exit']), default: 'rejoin', doc: 'what a node declared dead while cut off or starved does when it comes back: rejoin drops its clients and cluster state and joins again in the same process as a new incarnation; exit exits with status 3 for a supervisor to restart' },
  takeoverWaitMs: { schema: int(0, 30000), default: 2000, doc: 'longest a reconnecting client waits for its previous node to flush the session' },
  sessionExpirySec: { schema: int(0, 31536000), default: 86400, doc: 'persistent sessions of clients gone this long are deleted (0 = never)' },
  maxQueuedMessages: { schema: int(1, 10000000), default: 10000, doc: 'per-client offline queue cap; the oldest message is dropped past it (counted in metrics)' },
  drainSpreadMs: { schema: int(0, 3600000), default: 5000, doc: 'thingmesh drain: clients are disconnected evenly over this long so they do not reconnect all at once' },
  drainTimeoutMs: { schema: int(0, 600000), default: 10000, doc: 'a client whose socket stays full this long is disconnected (0 = never)' },
  maxClientBufferBytes: { schema: int(0, 1073741824), default: 4194304, doc: 'unsent bytes a client may have waiting on this node; past it, once its socket has stayed full for 1 s, QoS0 messages to it are dropped and a QoS1/2 message disconnects it (its persistent session keeps the message), so one slow reader cannot hold up the others (0 = no cap)' },
  redisCommandTimeoutMs: { schema: int(100, 60000), default: 2000, doc: 'a Redis command unanswered this long fails, so a cut link is noticed' },
  redisWaitReplicas: { schema: int(0, 10), default: 0, doc: 'QoS1/2 publishes are acknowledged only once this many Redis replicas have their writes (Redis WAIT); 0 = asynchronous replication' },
  redisWaitTimeoutMs: { schema: int(10, 60000), default: 500, doc: 'how long a publish waits for --redis-wait-replicas; fewer replicas in time = no PUBACK (the client resends)' },
  allowAnonymous: { schema: bool, default: undefined, doc: 'accept clients without credentials (default: only a standalone node bound to loopback with no users, like Mosquitto 2)' },
  adminUsername: { schema: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'use 1-64 letters, digits, _ . @ or -'), default: 'admin', doc: 'name of the first admin user created from --admin-password' },
  adminPassword: { schema: z.string().min(8, 'must be at least 8 characters').max(1024), default: undefined, doc: 'creates the first admin user at start if no admin exists (prefer the environment variable: flags show in ps)' },
  tlsPort: { schema: int(0, 65535), default: undefined, doc: 'MQTT over TLS port (TLS 1.2+ only); needs --tls-cert and --tls-key' },
  tlsCert: { schema: z.string().min(1), default: undefined, doc: 'PEM certificate chain file of the TLS listener' },
  tlsKey: { schema: z.string().min(1), default: undefined, doc: 'PEM private key file of the TLS listener' },
  tlsCa: { schema: z.string().min(1), default: undefined, doc: 'PEM CA file: enables mutual TLS; a client certificate is required and its CN names the user' },
  wsPort: { schema: int(0, 65535), default: undefined, doc: 'MQTT over WebSocket port (path /mqtt or any)' },
  wsOrigins: { schema: z.string(), default: '', doc: 'comma-separated Origin allow-list for WebSocket upgrades; empty = only clients sending no Origin (non-browsers), * = any' },
  wsMaxPayload: { schema: int(1024, 268435455), default: 2097152, doc: 'largest WebSocket message accepted, bytes; larger ones close the socket with 1009' },
  maxConnections: { schema: int(0, 10000000), default: 20000, doc: 'connections this node accepts at once, all listeners (0 = no cap)' },
  maxConnectionsPerIp: { schema: int(0, 10000000), default: 2000, doc: 'connections one remote address may hold at once (0 = no cap)' },
  connectRatePerIp: { schema: int(0, 1000000), default: 200, doc: 'new connections per second one remote address may open, with a burst of the same size (0 = no cap)' },
  maxSubscriptionsPerClient: { schema: int(0, 10000000), default: 1000, doc: 'topic filters one client may hold; more get SUBACK 0x80 (0 = no cap)' },
  // No cap by default, as in Mosquitto and EMQX: gateways, bridges and bulk
  // uploads legitimately publish thousands per second from one connection,
  // and a disconnected QoS1 publisher reconnects and resends (duplicates).
  publishRatePerClient: { schema: int(0, 10000000), default: 0, doc: 'PUBLISH packets per second one client may send, with a burst of twice that; a client over it is disconnected (0 = no cap, the default; set it where clients are untrusted)' },
  maxInflightInbound: { schema: int(0, 65535), default: 100, doc: 'inbound QoS2 messages one client may have awaiting PUBREL; more disconnect it' },
  authFailuresPerMinute: { schema: int(1, 100000), default: 10, doc: 'failed logins one remote address may make per minute before further attempts are refused for the rest of the minute' },
  authCacheTtlMs: { schema: int(0, 86400000), default: 300000, doc: 'how long a verified password is remembered (0 = never); user changes invalidate it at once' },
  authConcurrency: { schema: int(1, 64), default: 2, doc: 'password hashes computed at once; more wait in a bounded queue so a reconnect storm cannot stall the node' },
  auditMax: { schema: int(10, 10000000), default: 10000, doc: 'admin audit records kept (oldest dropped)' },
  partitions: { schema: int(1, 65536), default: 64, doc: 'thing engine partitions; every node of a cluster must use the same number' },
  engineLeaseMs: { schema: int(200, 60000), default: 2000, doc: 'thing engine partition lease; a node silent this long loses its partitions (renewed every quarter of it)' },
  import: { schema: z.string().min(1), default: undefined, doc: 'thing engine module (JSON bundle) imported at start, all-or-nothing' },
  scaleOutConnectionsPerNode: { schema: int(1, 100000000), default: 10000, doc: 'scaling advice: average connections per node above this advises scale-out ($SYS/thingmesh/cluster/scaling, thingmesh_scaling_recommendation)' },
  scaleOutCpu: { schema: int(1, 10000), default: 70, doc: 'scaling advice: average node CPU above this % of one core advises scale-out' },
  scaleOutEventLoopP99Ms: { schema: int(1, 600000), default: 100, doc: 'scaling advice: average event-loop delay p99 above this (ms) advises scale-out' },
  scaleInConnectionsPerNode: { schema: int(0, 100000000), default: 1000, doc: 'scaling advice: scale-in needs average connections per node below this, CPU and event-loop delay below theirs, and the load on one node fewer below every scale-out threshold' },
  scaleInCpu: { schema: int(0, 10000), default: 15, doc: 'scaling advice: scale-in needs average node CPU below this % of one core' },
  scaleInEventLoopP99Ms: { schema: int(0, 600000), default: 20, doc: 'scaling advice: scale-in needs every node\'s event-loop delay p99 below this (ms)' },
  scaleMinNodes: { schema: int(2, 10000), default: 2, doc: 'scaling advice: never advise scale-in at or below this many nodes' },
  scaleSustain: { schema: int(1, 1000), default: 5, doc: 'scaling advice: heartbeats a new verdict must hold before the advice changes (hysteresis)' },
} as const satisfies Record<string, { schema: z.ZodType, default: unknown, doc: string }>

export type OptionKey = keyof typeof optionSpecs

const shape = Object.fromEntries(
  Object.entries(optionSpecs).map(([k, s]) => {
    const schema = s.schema as z.ZodType
    return [k, s.default === undefined ? schema.optional() : schema.default(s.default as never)]
  }),
) as Record<string, z.ZodType>

const configSchema = z.object(shape).strict()

export interface NodeConfig {
  readonly host: string
  readonly port: number
  readonly httpPort: number
  readonly redis: string | undefined
  readonly nodeId: string
  readonly cluster: string
  readonly logLevel: string
  readonly maxPacketSize: number
  readonly maxConnectPacketSize: number
  readonly connectTimeoutMs: number
  readonly keepaliveLimit: number
  readonly clusterLinks: boolean
  readonly linkHost: string
  readonly linkPort: number
  readonly linkAdvertise: string | undefined
  readonly clusterSecret: string | undefined
  readonly heartbeatMs: number
  readonly deadAfterMs: number
  readonly onFenced: 'rejoin' | 'exit'
  readonly takeoverWaitMs: number
  readonly sessionExpirySec: number
  readonly maxQueuedMessages: number
  readonly drainSpreadMs: number
  readonly drainTimeoutMs: number
  readonly maxClientBufferBytes: number
  readonly redisCommandTimeoutMs: number
  readonly redisWaitReplicas: number
  readonly redisWaitTimeoutMs: number
  /** undefined: decided per connection (standalone, loopback, no users), see auth/policy.ts. */
  readonly allowAnonymous: boolean | undefined
  readonly adminUsername: string
  readonly adminPassword: string | undefined
  readonly tlsPort: number | undefined
  readonly tlsCert: string | undefined
  readonly tlsKey: string | undefined
  readonly tlsCa: string | undefined
  readonly wsPort: number | undefined
  readonly wsOrigins: string
  readonly wsMaxPayload: number
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  readonly connectRatePerIp: number
  readonly maxSubscriptionsPerClient: number
  readonly publishRatePerClient: number
  readonly maxInflightInbound: number
  readonly authFailuresPerMinute: number
  readonly authCacheTtlMs: number
  readonly authConcurrency: number
  readonly auditMax: number
  readonly partitions: number
  readonly engineLeaseMs: number
  readonly import: string | undefined
  readonly scaleOutConnectionsPerNode: number
  readonly scaleOutCpu: number
  readonly scaleOutEventLoopP99Ms: number
  readonly scaleInConnectionsPerNode: number
  readonly scaleInCpu: number
  readonly scaleInEventLoopP99Ms: number
  readonly scaleMinNodes: number
  readonly scaleSustain: number
}

/** `httpPort` -> `--http-port`, `THINGMESH_HTTP_PORT`. */
export const flagOf = (key: string): string => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
export const envOf = (key: string): string => 'THINGMESH_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase()

export interface ConfigSources {
  /** Options given on the command line, already keyed by option name. */
  cli?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
  /** Path of a JSON config file (--config / THINGMESH_CONFIG). */
  file?: string
}

/**
 * The one parse step: defaults < config file < environment < command line.
 * Every problem is reported together in one ThingmeshError('CONFIG_INVALID'),
 * whose message names each option by its flag.
 */
export function loadConfig (sources: ConfigSources = {}): NodeConfig {
  const env = sources.env ?? {}
  const filePath = sources.file ?? env.THINGMESH_CONFIG
  let fromFile: Record<string, unknown> = {}
  if (filePath) {
    try {
      fromFile = JSON.parse(readFileSync(filePath, 'utf8'))
    } catch (err) {
      throw new ThingmeshError('CONFIG_FILE_UNREADABLE', `--config ${filePath}: ${(err as Error).message}`)
    }
  }
  const fromEnv: Record<string, unknown> = {}
  for (const key of Object.keys(optionSpecs)) {
    const v = env[envOf(key)]
    if (v !== undefined && v !== '') fromEnv[key] = v
  }
  const merged: Record<string, unknown> = { ...fromFile, ...fromEnv }
  for (const [k, v] of Object.entries(sources.cli ?? {})) if (v !== undefined) merged[k] = v

  const parsed = configSchema.safeParse(merged)
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const key = String(issue.path[0] ?? '')
      if (issue.code === 'unrecognized_keys') return `unknown option(s) ${issue.keys.map(flagOf).join(', ')}`
      return `${flagOf(key)}: ${issue.message}`
    })
    throw new ThingmeshError('CONFIG_INVALID', 'invalid configuration: ' + problems.join('; '), { problems })
  }
  const data = parsed.data as Omit<NodeConfig, 'nodeId'> & { nodeId?: string }
  const problems: string[] = []
  if (data.deadAfterMs < 2 * data.heartbeatMs) problems.push(`${flagOf('deadAfterMs')}: must be at least twice ${flagOf('heartbeatMs')} or live nodes get declared dead`)
  if (data.tlsPort !== undefined && (!data.tlsCert || !data.tlsKey)) problems.push(`${flagOf('tlsPort')}: needs ${flagOf('tlsCert')} and ${flagOf('tlsKey')}`)
  if (data.tlsPort === undefined && (data.tlsCert || data.tlsKey || data.tlsCa)) problems.push(`${flagOf('tlsCert')}/${flagOf('tlsKey')}/${flagOf('tlsCa')}: given without ${flagOf('tlsPort')}`)
  if (data.wsMaxPayload < data.maxConnectPacketSize) problems.push(`${flagOf('wsMaxPayload')}: must be at least ${flagOf('maxConnectPacketSize')}`)
  if (problems.length > 0) throw new ThingmeshError('CONFIG_INVALID', 'invalid configuration: ' + problems.join('; '), { problems })
  const nodeId = data.nodeId ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${data.port}`
  return Object.freeze({ ...data, nodeId })
}
