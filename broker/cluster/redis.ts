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
  /** A ping unanswered this long counts as a cut link (default: half the command timeout, at least 500 ms). */
  stallMs?: number
  onUp?: () => void
  onDown?: () => void
  /**
   * Commands written to the socket when called instead of through ioredis'
   * auto-pipeline, which defers each command by a setImmediate (a whole loop
   * turn later) and lets one pipeline out at a time (the next waits for the
   * previous one's replies). For callers that batch on their own (the bus:
   * one command per turn per target node) it only added latency and a
   * pipeline object per command (ioredis copies every defined script onto
   * each one).
   */
  direct?: string[]
}

type Sent = { promise: Promise<unknown>, name: string, pipelineIndex?: number }
type SendCommand = (command: Sent, stream?: unknown) => Promise<unknown>
/** The stream ioredis' Pipeline passes to sendCommand (ioredis/built/Pipeline.js execPipeline). */
interface PipelineStream { isPipeline: true, write(data: string | Buffer): void }
const isPipelineStream = (s: unknown): s is PipelineStream => typeof s === 'object' && s !== null && (s as { isPipeline?: unknown }).isPipeline === true

/** How often each connection is pinged, and how long a ping may go unanswered before the link counts as cut. */
const WATCHDOG_EVERY_MS = 250
/** Connections whose watchdog ping has been unanswered for stallMs (and that were not replaced yet). */
const stalled = new WeakSet<Redis>()

/** True while the link is open but silent: to be reported as down (R5 wants a cut noticed within 2 s). */
export function linkStalled (redis: Redis): boolean {
  return stalled.has(redis)
}

/**
 * One place where Redis connections are made, with deliberate settings
 * (figures and the tests that show them: docs/redis-ha.md):
 * - a command waits for the link (offline queue, no retry-count limit) but
 *   never longer than `commandTimeoutMs`: a Sentinel failover (1-3 s) costs
 *   latency instead of errors, while a publish whose writes cannot be made in
 *   that time is refused, never acknowledged, and the queue is bounded by
 *   rate x timeout. `maxRetriesPerRequest: 1` rejected whatever was in flight
 *   at the second reconnect attempt, i.e. in every failover (R3);
 * - a command the caller already saw fail is not sent again after a
 *   reconnect (ioredis would replay it), so a refused publish is not written
 *   later behind the client's back; a pipeline still gets written without
 *   it, and a transaction is replayed whole or not at all;
 * - a watchdog pings every connection: a ping unanswered for `stallMs` (a
 *   link cut without a FIN/RST, or a paused server) marks the link stalled
 *   (linkStalled: /healthz 503); unanswered for the command timeout, the
 *   connection is replaced, so commands do not queue behind a dead socket;
 * - reconnects back off to 500 ms and never give up (a connection ioredis
 *   ends by itself is restarted);
 * - an outage is logged once when it starts and once, with its length, when it ends.
 */
export function connectRedis (opts: RedisConnectionOptions): Redis {
  const { log } = opts
  const subscriber = opts.subscriber === true
  const stallMs = opts.stallMs ?? Math.max(500, Math.floor(opts.commandTimeoutMs / 2))
  const settings: RedisOptions = {
    connectionName: opts.name,
    lazyConnect: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: null,
    // Subscriber connections carry no request that could time out meaningfully; the watchdog covers them.
    commandTimeout: subscriber ? undefined : opts.commandTimeoutMs,
    connectTimeout: Math.max(1000, opts.commandTimeoutMs),
    enableAutoPipelining: !subscriber,
    autoPipeliningIgnoredCommands: opts.direct ?? [],
    retryStrategy: (times) => Math.min(50 * times, 500),
    keepAlive: 1000,
    noDelay: true,
  }
  const redis = opts.url.startsWith('redis+sentinel://')
    ? new Redis({ ...settings, ...parseSentinelUrl(opts.url) })
    : new Redis(opts.url, settings)
  let downSince: number | null = null
  let everUp = false
  const markDown = (err?: Error | string): void => {
    if (downSince === null) {
      downSince = Date.now()
      log.warn({ event: 'redis.down', connection: opts.name, err: typeof err === 'string' ? err : err?.message }, 'Redis unreachable; retrying')
      opts.onDown?.()
    }
  }
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
  redis.on('error', (err: Error) => { markDown(err) })
  // A close we asked for (quit, disconnect) is no outage.
  redis.on('close', () => { if (everUp && !closing) markDown() })

  // Replays: ioredis re-sends unanswered and queued commands after a
  // reconnect, through sendCommand. One whose promise already failed is
  // skipped. A pipeline (auto-pipelining, multi(), pipeline()) hands its
  // commands to a stream object that writes the socket only once every one
  // of them was handed over (a count down to zero); a skipped command must
  // still count, or the rest are queued for replies without being written and
  // every later reply is matched to the wrong command. Transactions are
  // replayed whole or not at all, as their MULTI decides: a MULTI sent
  // without its EXEC would leave the connection queueing every later command.
  // (A transaction's commands arm their timeouts in one turn and fail
  // together, so its MULTI stands for all of them.)
  const failed = new WeakSet<object>()
  const transaction = new WeakMap<object, boolean>()
  const send = (redis as unknown as { sendCommand: SendCommand }).sendCommand.bind(redis)
  ;(redis as unknown as { sendCommand: SendCommand }).sendCommand = (command, stream) => {
    let skip = failed.has(command)
    if (isPipelineStream(stream)) {
      if (command.pipelineIndex === 0) {
        if (command.name === 'multi') transaction.set(stream, skip)
        else transaction.delete(stream)
      }
      skip = transaction.get(stream) ?? skip
      // ioredis writes (and counts) only on a ready, writable link; otherwise it queues the command offline.
      if (skip && redis.status === 'ready' && redis.stream?.writable === true) stream.write('')
    }
    if (skip) return command.promise
    command.promise.catch(() => { failed.add(command) })
    return send(command, stream)
  }

  // ioredis can give up on a Sentinel connection for good when the connector
  // is disconnected while it is still asking Sentinel for the primary (a
  // +switch-master during a reconnect, or our watchdog): connect() rejects,
  // status becomes 'end' and every command fails with "Connection is
  // closed." (test/cluster/redis-ha-reconnect.test.ts). A connection that
  // ends without quit() or disconnect() (without reconnect) is restarted.
  let closing = false
  const quit = redis.quit.bind(redis) as (...a: unknown[]) => unknown
  const disconnect = redis.disconnect.bind(redis)
  ;(redis as unknown as Record<string, unknown>).quit = (...a: unknown[]) => { closing = true; stopWatchdog(); return quit(...a) }
  redis.disconnect = (reconnect?: boolean) => {
    if (reconnect !== true) { closing = true; stopWatchdog() }
    disconnect(reconnect)
  }
  redis.on('end', () => {
    if (closing) return
    log.warn({ event: 'redis.reconnect_after_end', connection: opts.name }, 'Redis client gave up reconnecting; starting it again')
    setTimeout(() => { if (!closing && redis.status === 'end') redis.connect().catch(() => { /* 'end' again: restarted again */ }) }, 100).unref()
  })

  // The watchdog. Replies are read in the poll phase, after timers: a
  // verdict is only given from setImmediate, once this turn's replies were
  // read, so a stall of our own event loop is not taken for a cut link.
  // A ping silent for stallMs marks the link stalled (/healthz 503, PUBACKs
  // wait); only at the command timeout, when its commands fail anyway, is the
  // connection replaced: an overloaded host that answers slowly must not be
  // driven into a reconnect storm.
  let pingSentAt: number | null = null
  let statusSince = Date.now()
  let lastStatus = redis.status
  const reconnectAfterMs = Math.max(stallMs, opts.commandTimeoutMs)
  const check = (): void => {
    const now = Date.now()
    if (redis.status !== lastStatus) { lastStatus = redis.status; statusSince = now }
    if (redis.status === 'ready') {
      if (pingSentAt === null) {
        const sent = now
        pingSentAt = sent
        redis.ping().then(() => {
          if (pingSentAt !== sent) return
          pingSentAt = null
          if (stalled.has(redis)) {
            stalled.delete(redis)
            log.warn({ event: 'redis.unstalled', connection: opts.name, waitedMs: Date.now() - sent }, 'Redis link answering again')
          }
        }, () => { /* judged by its age */ })
      } else if (now - pingSentAt > stallMs) {
        setImmediate(() => {
          if (pingSentAt === null || redis.status !== 'ready' || closing) return
          const waited = Date.now() - pingSentAt
          if (!stalled.has(redis)) {
            stalled.add(redis)
            log.warn({ event: 'redis.stalled', connection: opts.name, waitedMs: waited }, 'Redis link silent')
          }
          if (waited > reconnectAfterMs) {
            pingSentAt = null
            stalled.delete(redis)
            markDown(`no reply to PING in ${waited} ms`)
            log.warn({ event: 'redis.reconnect_silent', connection: opts.name, waitedMs: waited }, 'Redis link silent past the command timeout; reconnecting')
            disconnect(true)
          }
        })
      }
    } else {
      pingSentAt = null
      stalled.delete(redis)
      if (redis.status === 'connect' && now - statusSince > 2 * reconnectAfterMs) {
        statusSince = now
        log.warn({ event: 'redis.handshake_stalled', connection: opts.name }, 'Redis handshake unanswered; reconnecting')
        disconnect(true)
      }
    }
  }
  let watchdog: NodeJS.Timeout | null = setInterval(check, WATCHDOG_EVERY_MS)
  watchdog.unref()
  const stopWatchdog = (): void => { if (watchdog) clearInterval(watchdog); watchdog = null }
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
    // A paused or black-holed Sentinel must not hold the connection in 'connecting' forever.
    sentinelCommandTimeout: 1000,
    sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000),
  }
}
