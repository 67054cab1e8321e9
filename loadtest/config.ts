// The run configuration, declared once. Defaults are documented here and
// applied by options.ts; nothing downstream re-validates.

export const SCENARIOS = ['conn', 'pub', 'sub', 'pubsub', 'latency', 'fleet', 'failover'] as const
export type Scenario = (typeof SCENARIOS)[number]

export interface TlsConfig {
  readonly enabled: boolean
  /** PEM contents, read at parse time so a bad path fails before any connect. */
  readonly ca?: Buffer
  readonly cert?: Buffer
  readonly key?: Buffer
  /** Skip certificate verification (self-signed test clusters). */
  readonly insecure: boolean
}

export interface LoadtestConfig {
  readonly scenario: Scenario
  /** Broker URLs; clients are spread over them round-robin. */
  readonly urls: readonly string[]
  /** Subscriber URLs (latency/pubsub/failover). Default: urls, shifted by one so a subscriber sits on another broker than the publisher with the same index. */
  readonly subUrls: readonly string[]
  /** conn: connections held; pub/pubsub/latency/failover: publishers; sub: subscribers; fleet: devices. Default 10. */
  readonly clients: number
  /** pubsub/latency/failover: subscriber clients. Default 1. */
  readonly subscribers: number
  /** Total messages per second over all publishers; null = as fast as in-flight windows allow. latency/failover default 100. */
  readonly rate: number | null
  /** Publishing (or holding, for conn) time. Default 10 s when neither duration nor count is given. */
  readonly durationMs: number | null
  /** Total messages to publish over all publishers. */
  readonly count: number | null
  /** Hard bound on the whole run, whatever happens. Default: duration + 60 s, or 300 s with --count only. */
  readonly timeoutMs: number
  readonly qos: 0 | 1 | 2
  /** Bytes per message including the sequence header. Default 64. */
  readonly payloadSize: number
  /** Publish topic pattern with {clientId}, {n} (client index), fleet also {thingId}, {name}. */
  readonly topic: string
  /** Subscription filter. Default: the topic pattern with placeholders turned into '+'. */
  readonly subTopic: string
  readonly clean: boolean
  /** Seconds. Default 60. */
  readonly keepalive: number
  /** Connections opened per second over the whole run. Default 500. */
  readonly ramp: number
  readonly username?: string
  readonly password?: string
  readonly tls: TlsConfig
  readonly ws: boolean
  /** Path for MQTT over WebSocket. Default /mqtt. */
  readonly wsPath: string
  /** Worker threads the clients are spread over. Default 1 (the main thread). */
  readonly workers: number
  /** Unacknowledged publishes per client before it waits. Default 64. */
  readonly inflight: number
  /** Time to wait after publishing stops for messages still in flight. Default 5 s. */
  readonly drainMs: number
  readonly connectTimeoutMs: number
  /** Client reconnect period. Default 1000 ms. */
  readonly reconnectMs: number
  /** Client id prefix; a random one per run keeps runs apart. */
  readonly clientPrefix: string
  readonly json: boolean
  readonly reportPath: string | null
  /** Print the live line; default: only when stderr is a TTY. */
  readonly live: boolean
  readonly pid: number | null
  readonly metricsUrl: string | null
  /** Seconds after publishing starts at which `exec` runs. */
  readonly atMs: number | null
  readonly exec: string | null
  /** fleet: create things through $admin/things/put first. Default true. */
  readonly create: boolean
  /** fleet: properties per device. Default 3. */
  readonly properties: number
  readonly createTimeoutMs: number
  /** Testing hook: receivers drop every Nth message before checking it. */
  readonly injectDropEvery: number | null
  /** Exit 1 when any message was lost. */
  readonly failOnLoss: boolean
}
