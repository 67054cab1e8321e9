import { randomBytes } from 'node:crypto'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { AdminReply } from './protocol.ts'

export interface AdminClientOptions {
  url: string
  username?: string
  password?: string
  clientId?: string
  timeoutMs?: number
  /** Extra mqtt.js options (TLS CA, WebSocket headers...). */
  mqtt?: IClientOptions
}

/**
 * A small admin client over MQTT: connects, subscribes to its own reply
 * topic, and matches replies to requests by id. Used by the CLI and the tests.
 */
export class AdminClient {
  private readonly pending = new Map<string, { resolve: (r: AdminReply) => void, reject: (e: Error) => void }>()
  private seq = 0

  private constructor (readonly mqtt: MqttClient, readonly clientId: string, private readonly timeoutMs: number) {
    mqtt.on('message', (_topic, payload) => {
      let reply: AdminReply
      try { reply = JSON.parse(payload.toString()) as AdminReply } catch { return }
      const done = this.pending.get(String(reply.id))
      if (done) { this.pending.delete(String(reply.id)); done.resolve(reply) }
    })
    mqtt.on('close', () => {
      for (const [id, p] of this.pending) { this.pending.delete(id); p.reject(new Error('the broker closed the connection (is this operation allowed for this user?)')) }
    })
  }

  static async connect (opts: AdminClientOptions): Promise<AdminClient> {
    const clientId = opts.clientId ?? `admin-cli-${randomBytes(4).toString('hex')}`
    const timeoutMs = opts.timeoutMs ?? 10_000
    const client = mqtt.connect(opts.url, {
      clientId, username: opts.username, password: opts.password, protocolVersion: 4, clean: true,
      reconnectPeriod: 0, connectTimeout: timeoutMs, ...opts.mqtt,
    })
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', (err) => { client.end(true); reject(err) })
      client.once('close', () => reject(new Error(`connection to ${opts.url} closed before CONNACK`)))
    })
    client.on('error', () => {})
    const granted = await client.subscribeAsync(`$admin/reply/${clientId}`, { qos: 1 })
    if (granted[0]?.qos === 128) { client.end(true); throw new Error('the broker refused the admin reply topic: this user is not an admin') }
    return new AdminClient(client, clientId, timeoutMs)
  }

  async request (operation: string, args: unknown = {}): Promise<AdminReply> {
    const id = `${++this.seq}-${randomBytes(3).toString('hex')}`
    const reply = new Promise<AdminReply>((resolve, reject) => {
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no reply to ${operation} within ${this.timeoutMs} ms`)) }, this.timeoutMs)
      this.pending.set(id, { resolve: (r) => { clearTimeout(timer); resolve(r) }, reject: (e) => { clearTimeout(timer); reject(e) } })
    })
    reply.catch(() => {})
    await this.mqtt.publishAsync(`$admin/${operation}`, JSON.stringify({ v: 1, id, args }), { qos: 1 })
    return reply
  }

  /** Like request, but returns the result or throws an Error with `code`. */
  async call (operation: string, args: unknown = {}): Promise<unknown> {
    const r = await this.request(operation, args)
    if (r.ok) return r.result
    throw Object.assign(new Error(`${r.error.message} [${r.error.code}]`), { code: r.error.code, details: r.error.details })
  }

  async close (): Promise<void> {
    await this.mqtt.endAsync()
  }
}
