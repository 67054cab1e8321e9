// Turning a broker URL plus the run config into MQTT.js client options, and
// the up-front reachability probe.

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { LoadtestConfig } from './config.ts'
import { LoadtestError } from './errors.ts'

/** Applies --tls / --ws to a URL given in any accepted scheme. */
export function effectiveUrl(url: string, config: Pick<LoadtestConfig, 'tls' | 'ws' | 'wsPath'>): string {
  const u = new URL(url)
  const tls = config.tls.enabled || u.protocol === 'mqtts:' || u.protocol === 'ssl:' || u.protocol === 'tls:' || u.protocol === 'wss:'
  const ws = config.ws || u.protocol === 'ws:' || u.protocol === 'wss:'
  const scheme = ws ? (tls ? 'wss' : 'ws') : tls ? 'mqtts' : 'mqtt'
  const port = u.port !== '' ? u.port : ws ? (tls ? '443' : '80') : tls ? '8883' : '1883'
  const path = ws ? (u.pathname !== '/' && u.pathname !== '' ? u.pathname : config.wsPath) : ''
  const host = u.hostname.includes(':') && !u.hostname.startsWith('[') ? `[${u.hostname}]` : u.hostname
  return `${scheme}://${host}:${port}${path}`
}

export function clientOptions(config: LoadtestConfig, clientId: string, reconnect = true): IClientOptions {
  const o: IClientOptions = {
    clientId,
    protocolVersion: 4,
    clean: config.clean,
    keepalive: config.keepalive,
    connectTimeout: config.connectTimeoutMs,
    reconnectPeriod: reconnect ? config.reconnectMs : 0,
    // Resubscription is done by the tool so it can time it (failover).
    resubscribe: false,
    rejectUnauthorized: !config.tls.insecure,
  }
  if (config.username !== undefined) o.username = config.username
  if (config.password !== undefined) o.password = config.password
  if (config.tls.ca) o.ca = config.tls.ca
  if (config.tls.cert) o.cert = config.tls.cert
  if (config.tls.key) o.key = config.tls.key
  return o
}

/** Short, stable reason for a failed connection, used as a histogram key. */
export function failureReason(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') return code
    if (typeof code === 'number') return `connack ${code} (${err.message})`
    return err.message
  }
  return String(err)
}

/**
 * Opens one connection to each URL before the run so an unreachable broker
 * fails fast with one line instead of N reconnecting clients.
 */
export async function probeBrokers(config: LoadtestConfig, urls: readonly string[]): Promise<void> {
  const unique = [...new Set(urls)]
  const failures = await Promise.all(unique.map((u) => probeOne(config, u)))
  const bad = failures.filter((f): f is string => f !== null)
  if (bad.length > 0) {
    throw new LoadtestError('LOADTEST_UNREACHABLE', `cannot connect to broker: ${bad.join('; ')}`, bad)
  }
}

function probeOne(config: LoadtestConfig, url: string): Promise<string | null> {
  const target = effectiveUrl(url, config)
  return new Promise((resolve) => {
    let settled = false
    const client: MqttClient = mqtt.connect(target, {
      ...clientOptions(config, `${config.clientPrefix}-probe`, false),
      clean: true,
      connectTimeout: Math.min(config.connectTimeoutMs, 5000),
    })
    const done = (reason: string | null): void => {
      if (settled) return
      settled = true
      client.end(true, () => resolve(reason))
    }
    client.once('connect', () => done(null))
    client.once('error', (err) => done(`${target} ${failureReason(err)}`))
    client.once('close', () => done(`${target} connection closed before CONNACK`))
  })
}
