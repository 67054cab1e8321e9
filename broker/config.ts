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
  keepaliveLimit: { schema: int(0, 65535), default: 300, doc: 'largest keepalive (s) a client may ask for; larger ones are refused (0 = no cap)' },
  heartbeatMs: { schema: int(100, 60000), default: 1000, doc: 'how often a node renews its membership in Redis' },
  deadAfterMs: { schema: int(300, 600000), default: 3000, doc: 'a node silent for this long is declared dead; its clients\' wills are published' },
  takeoverWaitMs: { schema: int(0, 30000), default: 2000, doc: 'longest a reconnecting client waits for its previous node to flush the session' },
  sessionExpirySec: { schema: int(0, 31536000), default: 86400, doc: 'persistent sessions of clients gone this long are deleted (0 = never)' },
  maxQueuedMessages: { schema: int(1, 10000000), default: 10000, doc: 'per-client offline queue cap; the oldest message is dropped past it (counted in metrics)' },
  drainTimeoutMs: { schema: int(0, 600000), default: 10000, doc: 'a client whose socket stays full this long is disconnected (0 = never)' },
  redisCommandTimeoutMs: { schema: int(100, 60000), default: 2000, doc: 'a Redis command unanswered this long fails, so a cut link is noticed' },
  allowAnonymous: { schema: bool, default: true, doc: 'accept clients without credentials' },
  partitions: { schema: int(1, 65536), default: 64, doc: 'thing engine partitions; every node of a cluster must use the same number' },
  engineLeaseMs: { schema: int(200, 60000), default: 2000, doc: 'thing engine partition lease; a node silent this long loses its partitions (renewed every quarter of it)' },
  import: { schema: z.string().min(1), default: undefined, doc: 'thing engine module (JSON bundle) imported at start, all-or-nothing' },
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
  readonly heartbeatMs: number
  readonly deadAfterMs: number
  readonly takeoverWaitMs: number
  readonly sessionExpirySec: number
  readonly maxQueuedMessages: number
  readonly drainTimeoutMs: number
  readonly redisCommandTimeoutMs: number
  readonly allowAnonymous: boolean
  readonly partitions: number
  readonly engineLeaseMs: number
  readonly import: string | undefined
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
  if (problems.length > 0) throw new ThingmeshError('CONFIG_INVALID', 'invalid configuration: ' + problems.join('; '), { problems })
  const nodeId = data.nodeId ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40)}-${data.port}`
  return Object.freeze({ ...data, nodeId })
}
