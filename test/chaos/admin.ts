// A minimal black-box admin caller: one request on `$admin/{op}`, the reply
// on `$admin/reply/{clientId}` (admin wire format v1). Kept here rather than
// importing the broker's client so the campaign only speaks the wire protocol.
import mqtt, { type MqttClient } from 'mqtt'
import type { Server } from './stream.ts'

export interface Admin {
  call(op: string, args: object, timeoutMs?: number): Promise<{ ok: boolean, result?: unknown, error?: { code: string, message: string } }>
  close(): Promise<void>
}

export async function adminConnect (server: Server, username: string, password: string): Promise<Admin> {
  const clientId = `chaos-admin-${Math.random().toString(36).slice(2, 8)}`
  const client: MqttClient = mqtt.connect({ host: server.host, port: server.port, clientId, username, password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 })
  await new Promise<void>((resolve, reject) => { client.once('connect', () => resolve()); client.once('error', reject); client.once('close', () => reject(new Error('admin connection closed before CONNACK'))) })
  client.on('error', () => {})
  const replies = new Map<string, (r: Record<string, unknown>) => void>()
  client.on('message', (_t, p) => {
    try {
      const r = JSON.parse(p.toString()) as Record<string, unknown>
      replies.get(String(r.id))?.(r)
    } catch { /* not ours */ }
  })
  await client.subscribeAsync(`$admin/reply/${clientId}`, { qos: 1 })
  let seq = 0
  return {
    async call (op, args, timeoutMs = 10_000) {
      const id = `c${++seq}`
      const got = new Promise<Record<string, unknown>>((resolve, reject) => {
        replies.set(id, resolve)
        setTimeout(() => reject(new Error(`admin ${op}: no reply in ${timeoutMs} ms`)), timeoutMs)
      })
      await client.publishAsync(`$admin/${op}`, JSON.stringify({ v: 1, id, args }), { qos: 1 })
      const r = await got
      replies.delete(id)
      return r as { ok: boolean, result?: unknown, error?: { code: string, message: string } }
    },
    async close () { await client.endAsync(true).catch(() => {}) },
  }
}
