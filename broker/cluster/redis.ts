import { readFileSync, readdirSync } from 'node:fs'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from '../log.ts'

export interface RedisConnectionOptions {
  url: string
  name: string
  commandTimeoutMs: number
  log: Logger
  /** Subscriber connections must queue SUBSCRIBE while reconnecting; command connections must not. */
  subscriber?: boolean
  onUp?: () => void
  onDown?: () => void
}

/**
 * One place where Redis connections are made, with deliberate settings:
 * - command connections fail fast while Redis is away (no offline queue), so a
 *   publish that cannot be made durable is refused instead of acknowledged;
 * - every command has a timeout, so a silently cut link is noticed;
 * - reconnects back off to 1 s and never give up;
 * - an outage is logged once when it starts and once, with its length, when it ends.
 */
export function connectRedis (opts: RedisConnectionOptions): Redis {
  const { log } = opts
  const settings: RedisOptions = {
    connectionName: opts.name,
    lazyConnect: false,
    enableOfflineQueue: opts.subscriber === true,
    maxRetriesPerRequest: opts.subscriber === true ? null : 1,
    commandTimeout: opts.subscriber === true ? undefined : opts.commandTimeoutMs,
    connectTimeout: Math.max(1000, opts.commandTimeoutMs),
    enableAutoPipelining: opts.subscriber !== true,
    retryStrategy: (times) => Math.min(50 * times, 1000),
    keepAlive: 1000,
    noDelay: true,
  }
  const redis = opts.url.startsWith('redis+sentinel://')
    ? new Redis({ ...settings, ...parseSentinelUrl(opts.url) })
    : new Redis(opts.url, settings)
  let downSince: number | null = null
  let everUp = false
  redis.on('ready', () => {
    if (downSince !== null) {
      log.warn({ event: 'redis.up', connection: opts.name, outageMs: Date.now() - downSince }, 'Redis reachable again')
    } else if (!everUp) {
      log.debug({ event: 'redis.connected', connection: opts.name }, 'Redis connected')
    }
    everUp = true
    downSince = null
    opts.onUp?.()
  })
  const markDown = (err?: Error): void => {
    if (downSince === null) {
      downSince = Date.now()
      log.warn({ event: 'redis.down', connection: opts.name, err: err?.message }, 'Redis unreachable; retrying every second at most')
      opts.onDown?.()
    }
  }
  redis.on('error', (err: Error) => { markDown(err) })
  redis.on('close', () => { if (everUp) markDown() })
  // ioredis can give up on a Sentinel connection for good when +switch-master
  // arrives while it is still asking Sentinel for the primary (seen in the HA
  // tests: every command then fails with "Connection is closed."). A
  // connection that ends without quit()/disconnect() is restarted.
  let closing = false
  for (const m of ['quit', 'disconnect'] as const) {
    const original = redis[m].bind(redis) as (...a: unknown[]) => unknown
    ;(redis as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => { closing = true; return original(...a) }
  }
  redis.on('end', () => {
    if (closing) return
    log.warn({ event: 'redis.reconnect_after_end', connection: opts.name }, 'Redis client gave up reconnecting; starting it again')
    setTimeout(() => { if (!closing) redis.connect().catch(() => { /* retried by the retry strategy */ }) }, 100).unref()
  })
  return redis
}

/**
 * Loads every Lua script in `dir` as an ioredis command. The file name gives
 * the key count (`name-N.lua`); scripts without one take a variable number of
 * keys, passed first. Each script's header lists KEYS, ARGV and the reply.
 */
export function defineScripts (redis: Redis, dir: URL): void {
  for (const file of readdirSync(dir)) {
    const m = /^([A-Za-z]+)(?:-(\d+))?\.lua$/.exec(file)
    if (!m) continue
    const lua = readFileSync(new URL(file, dir), 'utf8')
    redis.defineCommand(m[1], m[2] === undefined ? { lua } : { lua, numberOfKeys: Number(m[2]) })
  }
}

/**
 * `redis+sentinel://[user:pass@]h1:26379,h2:26379/masterName[?db=N]`. The
 * password (if any) is used for the Redis servers; Sentinels are assumed to
 * need none unless `sentinelPassword` is given as a query parameter.
 */
export function parseSentinelUrl (url: string): RedisOptions {
  const m = /^redis\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\?(.*))?$/.exec(url)
  if (!m) throw new Error(`invalid Sentinel URL ${url}: expected redis+sentinel://host:port,host:port/masterName`)
  const [, user, pass, hosts, name, query] = m
  const params = new URLSearchParams(query ?? '')
  const sentinels = hosts.split(',').map((hp) => {
    const [host, port] = hp.split(':')
    return { host, port: Number(port || 26379) }
  })
  return {
    sentinels,
    name: decodeURIComponent(name),
    username: user ? decodeURIComponent(user) : undefined,
    password: pass ? decodeURIComponent(pass) : undefined,
    sentinelPassword: params.get('sentinelPassword') ?? undefined,
    db: params.has('db') ? Number(params.get('db')) : undefined,
    // Subscribe to Sentinel's +switch-master so a failover is followed at once,
    // not on the next failed command.
    failoverDetector: true,
    sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000),
  }
}
