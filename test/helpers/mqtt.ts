import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'

export type { MqttClient }

/** An MQTT.js client connected (CONNACK received) to 127.0.0.1:port. */
export async function connect (port: number, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = open(port, opts)
  await connected(client, port)
  return client
}

/**
 * Connects and collects every message from the first packet on. A restored
 * session's queued messages can arrive in the same read as the CONNACK,
 * before `await connect()` returns, so `collect()` attached after it could
 * miss them.
 */
export async function connectAndCollect (port: number, opts: IClientOptions = {}): Promise<{ client: MqttClient, got: Received[] }> {
  const client = open(port, opts)
  const got = collect(client)
  await connected(client, port)
  return { client, got }
}

function open (port: number, opts: IClientOptions): MqttClient {
  return mqtt.connect({ host: '127.0.0.1', port, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts })
}

async function connected (client: MqttClient, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error(`connection to ${port} closed before CONNACK`)))
  })
  client.on('error', () => {})
}

export interface Received { topic: string, payload: string, qos: number, retain: boolean }

/** Collects every message a client receives, in order. */
export function collect (client: MqttClient): Received[] {
  const got: Received[] = []
  client.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain })
  })
  return got
}

export async function close (...clients: Array<MqttClient | undefined>): Promise<void> {
  await Promise.all(clients.map((c) => c ? c.endAsync(true).catch(() => {}) : undefined))
}
