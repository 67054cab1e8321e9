// Command-line parsing: one step at the edge that reports every problem
// together and returns a frozen config.

import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { Command, CommanderError, Option } from 'commander'
import { LoadtestError } from './errors.ts'
import { SCENARIOS, type LoadtestConfig, type Scenario } from './config.ts'
import { filterProblems, patternToFilter, topicPatternProblems } from './topic.ts'

export type ParseResult =
  | { readonly kind: 'help'; readonly text: string }
  | { readonly kind: 'run'; readonly config: LoadtestConfig }

export interface ParseEnv {
  /** Whether stderr is a TTY (drives the live line default). */
  readonly isTTY?: boolean
}

const DEFAULT_TOPIC: Record<Scenario, string> = {
  conn: 'loadtest/{clientId}',
  pub: 'loadtest/{clientId}',
  sub: 'loadtest/{clientId}',
  pubsub: 'loadtest/{clientId}',
  latency: 'loadtest/{clientId}',
  failover: 'loadtest/{clientId}',
  fleet: 'things/{thingId}/properties/{name}',
}

function buildProgram(): Command {
  const p = new Command('thingmesh loadtest')
    .description('MQTT 3.1.1 load test: connections, throughput, latency, fleet and failover.')
    .argument('<scenario>', SCENARIOS.join(' | '))
    .option('--url <urls>', 'broker URLs, comma-separated (clients spread round-robin)', 'mqtt://127.0.0.1:1883')
    .option('--sub-url <urls>', 'subscriber broker URLs (default: --url shifted by one)')
    .option('--clients <n>', 'connections / publishers / devices', '10')
    .option('--subscribers <n>', 'subscriber clients for pubsub, latency, failover', '1')
    .option('--rate <msg/s>', 'total publish rate (default unlimited; latency/failover 100)')
    .option('--duration <time>', 'run time, e.g. 30, 30s, 2m, 500ms (default 10s)')
    .option('--count <n>', 'total messages to publish')
    .option('--timeout <time>', 'hard bound on the whole run')
    .option('--qos <0|1|2>', 'publish and subscribe QoS (failover default 1)')
    .option('--payload-size <bytes>', 'message size', '64')
    .option('--topic <pattern>', 'publish topic with {clientId} {n} placeholders')
    .option('--sub-topic <filter>', 'subscription filter (default: --topic with placeholders as +)')
    .option('--clean', 'clean session (default)')
    .option('--no-clean', 'persistent sessions')
    .option('--keepalive <s>', 'keepalive seconds', '60')
    .option('--ramp <conn/s>', 'connections opened per second', '500')
    .option('--username <name>', 'MQTT username')
    .option('--password <secret>', 'MQTT password')
    .option('--tls', 'use TLS (mqtts:// or wss://)')
    .option('--ca <file>', 'CA certificate (PEM)')
    .option('--cert <file>', 'client certificate (PEM)')
    .option('--key <file>', 'client key (PEM)')
    .option('--insecure', 'do not verify the broker certificate')
    .option('--ws', 'MQTT over WebSocket')
    .option('--ws-path <path>', 'WebSocket path', '/mqtt')
    .option('--workers <n>', 'worker threads to spread clients over', '1')
    .option('--inflight <n>', 'unacknowledged publishes per client', '64')
    .option('--drain <time>', 'wait for in-flight messages after publishing stops', '5s')
    .option('--connect-timeout <time>', 'per-connection timeout', '10s')
    .option('--reconnect-period <time>', 'client reconnect period', '1s')
    .option('--client-prefix <p>', 'client id prefix (default random per run)')
    .option('--json', 'print the summary as JSON on stdout')
    .option('--report <file>', 'write a self-contained HTML report')
    .option('--quiet', 'no live line even on a TTY')
    .option('--pid <pid>', 'conn: broker pid, to measure memory per connection')
    .option('--metrics <url>', 'conn: broker Prometheus /metrics URL, to measure memory per connection')
    .option('--at <time>', 'when to run --exec, after publishing starts')
    .option('--exec <command>', 'shell command to run at --at (e.g. "kill -9 1234")')
    .option('--no-create', 'fleet: do not create things through $admin/things/put')
    .option('--properties <n>', 'fleet: properties per device', '3')
    .option('--create-timeout <time>', 'fleet: wait for each admin reply', '10s')
    .option('--fail-on-loss', 'exit 1 if any message was lost')
    .addOption(new Option('--inject-drop-every <n>', 'testing: drop every Nth received message').hideHelp())
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
  return p
}

export function helpText(): string {
  return buildProgram().helpInformation()
}

export function parseArgs(argv: readonly string[], env: ParseEnv = {}): ParseResult {
  const program = buildProgram()
  try {
    program.parse([...argv], { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help') {
        return { kind: 'help', text: program.helpInformation() }
      }
      const msg = err.message.replace(/^error: /, '')
      throw new LoadtestError('LOADTEST_BAD_OPTION', msg)
    }
    throw err
  }
  const o = program.opts<Record<string, string | boolean | undefined>>()
  const config = validate(program.args[0] ?? '', o, env)
  return { kind: 'run', config }
}

function validate(scenarioArg: string, o: Record<string, string | boolean | undefined>, env: ParseEnv): LoadtestConfig {
  const problems: string[] = []
  // Commander stores --payload-size as payloadSize; problems name the flag.
  const camel = (k: string): string => k.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase())
  const str = (k: string): string | undefined => (typeof o[camel(k)] === 'string' ? (o[camel(k)] as string) : undefined)

  let scenario: Scenario = 'pub'
  if ((SCENARIOS as readonly string[]).includes(scenarioArg)) scenario = scenarioArg as Scenario
  else problems.push(`unknown scenario "${scenarioArg}" (expected ${SCENARIOS.join(', ')})`)

  const int = (k: string, min: number, max: number): number | null => {
    const v = str(k)
    if (v === undefined) return null
    const n = Number(v)
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`--${k} must be an integer from ${min} to ${max}, got "${v}"`)
      return null
    }
    return n
  }
  const positive = (k: string): number | null => {
    const v = str(k)
    if (v === undefined) return null
    const n = Number(v)
    if (!Number.isFinite(n) || n <= 0) {
      problems.push(`--${k} must be a number > 0, got "${v}"`)
      return null
    }
    return n
  }
  const time = (k: string): number | null => {
    const v = str(k)
    if (v === undefined) return null
    const ms = parseDurationMs(v)
    if (ms === null) problems.push(`--${k} must be a time like 30, 30s, 500ms or 2m, got "${v}"`)
    return ms
  }

  const urls = parseUrls(str('url') ?? '', 'url', problems)
  const subUrlsRaw = str('sub-url')
  const subUrls = subUrlsRaw === undefined ? [...urls.slice(1), ...urls.slice(0, 1)] : parseUrls(subUrlsRaw, 'sub-url', problems)

  const clients = int('clients', 1, 1_000_000) ?? 10
  const subscribers = int('subscribers', 1, 100_000) ?? 1
  const pacedByDefault = scenario === 'latency' || scenario === 'failover'
  const rate = positive('rate') ?? (pacedByDefault ? 100 : null)
  const count = int('count', 1, Number.MAX_SAFE_INTEGER)
  let durationMs = time('duration')
  if (durationMs === null && count === null) durationMs = 10_000
  if (scenario === 'conn' && durationMs === null) problems.push('conn holds connections for --duration; --count does not apply')
  const timeoutMs = time('timeout') ?? (durationMs !== null ? durationMs + 60_000 : 300_000)
  const qosRaw = int('qos', 0, 2)
  const qos = (qosRaw ?? (scenario === 'failover' ? 1 : 0)) as 0 | 1 | 2
  const payloadSize = int('payload-size', 0, 256 * 1024 * 1024) ?? 64

  const topic = str('topic') ?? DEFAULT_TOPIC[scenario]
  problems.push(...topicPatternProblems(topic, '--topic'))
  if (scenario === 'fleet' && !topic.includes('{thingId}')) problems.push('--topic for fleet must contain {thingId}')
  const subTopic = str('sub-topic') ?? patternToFilter(topic)
  problems.push(...filterProblems(subTopic, '--sub-topic'))

  const keepalive = int('keepalive', 0, 65535) ?? 60
  const ramp = positive('ramp') ?? 500
  const username = str('username')
  const password = str('password')
  // [MQTT-3.1.2-22]: a password requires a username.
  if (password !== undefined && username === undefined) problems.push('--password requires --username')

  const readPem = (k: string): Buffer | undefined => {
    const path = str(k)
    if (path === undefined) return undefined
    try {
      return readFileSync(path)
    } catch (err) {
      problems.push(`--${k} cannot read "${path}": ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
      return undefined
    }
  }
  const ca = readPem('ca')
  const cert = readPem('cert')
  const key = readPem('key')
  if ((str('cert') === undefined) !== (str('key') === undefined)) problems.push('--cert and --key go together')
  const tlsEnabled = o.tls === true || urls.some((u) => u.startsWith('mqtts:') || u.startsWith('wss:'))

  const workers = int('workers', 1, 64) ?? 1
  const totalClients = clients + (usesSubscribers(scenario) ? subscribers : 0)
  if (workers > totalClients) problems.push(`--workers ${workers} is more than the ${totalClients} clients`)
  const inflight = int('inflight', 1, 65535) ?? 64
  const drainMs = time('drain') ?? 5000
  const connectTimeoutMs = time('connect-timeout') ?? 10_000
  const reconnectMs = time('reconnect-period') ?? 1000

  const pidRaw = int('pid', 1, 4_194_304)
  const metricsUrl = str('metrics') ?? null
  if (metricsUrl !== null && !/^https?:\/\/[^/]+/.test(metricsUrl)) problems.push(`--metrics must be an http(s) URL, got "${metricsUrl}"`)

  const atMs = time('at')
  const exec = str('exec') ?? null
  if ((atMs === null) !== (exec === null)) problems.push('--at and --exec go together')
  if (atMs !== null && durationMs !== null && atMs >= durationMs) problems.push('--at must be before the end of --duration')

  const properties = int('properties', 1, 1000) ?? 3
  const createTimeoutMs = time('create-timeout') ?? 10_000
  const injectDropEvery = int('inject-drop-every', 2, Number.MAX_SAFE_INTEGER)

  const prefix = str('client-prefix') ?? `tmlt-${randomBytes(3).toString('hex')}`
  if (/[:/+#]/.test(prefix)) problems.push('--client-prefix must not contain : / + #')

  if (problems.length > 0) {
    throw new LoadtestError('LOADTEST_BAD_OPTION', problems.join('; '), problems)
  }

  return Object.freeze({
    scenario,
    urls: Object.freeze(urls),
    subUrls: Object.freeze(subUrls),
    clients,
    subscribers,
    rate,
    durationMs,
    count,
    timeoutMs,
    qos,
    payloadSize,
    topic,
    subTopic,
    clean: o.clean !== false,
    keepalive,
    ramp,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    tls: Object.freeze({
      enabled: tlsEnabled,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert } : {}),
      ...(key ? { key } : {}),
      insecure: o.insecure === true,
    }),
    ws: o.ws === true || urls.some((u) => u.startsWith('ws:') || u.startsWith('wss:')),
    wsPath: str('ws-path') ?? '/mqtt',
    workers,
    inflight,
    drainMs,
    connectTimeoutMs,
    reconnectMs,
    clientPrefix: prefix,
    json: o.json === true,
    reportPath: str('report') ?? null,
    live: o.quiet !== true && env.isTTY === true,
    pid: pidRaw,
    metricsUrl,
    atMs,
    exec,
    create: o.create !== false,
    properties,
    createTimeoutMs,
    injectDropEvery,
    failOnLoss: o.failOnLoss === true,
  } satisfies LoadtestConfig)
}

export function usesSubscribers(s: Scenario): boolean {
  return s === 'pubsub' || s === 'latency' || s === 'failover'
}

/** "30" (seconds), "30s", "500ms", "2m", "1.5s". */
export function parseDurationMs(v: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(v)
  if (m === null) return null
  const n = Number(m[1])
  const mult = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : 1000
  const ms = Math.round(n * mult)
  return ms > 0 ? ms : null
}

const SCHEMES = new Set(['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'])

function parseUrls(raw: string, label: string, problems: string[]): string[] {
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  if (parts.length === 0) problems.push(`--${label} needs at least one broker URL`)
  const out: string[] = []
  for (const part of parts) {
    const withScheme = /^[a-z]+:\/\//i.test(part) ? part : `mqtt://${part}`
    let u: URL
    try {
      u = new URL(withScheme)
    } catch {
      problems.push(`--${label} "${part}" is not a URL`)
      continue
    }
    if (!SCHEMES.has(u.protocol)) {
      problems.push(`--${label} "${part}" has unsupported scheme ${u.protocol} (mqtt, mqtts, ws, wss)`)
      continue
    }
    if (u.hostname === '') {
      problems.push(`--${label} "${part}" has no host`)
      continue
    }
    out.push(withScheme)
  }
  return out
}
