import { AdminClient } from '../../broker/admin/index.ts'

/** An admin client on 127.0.0.1:port. */
export function adminClient (port: number, username = 'admin', password = 'admin-secret-1', clientId?: string): Promise<AdminClient> {
  return AdminClient.connect({ url: `mqtt://127.0.0.1:${port}`, username, password, clientId, timeoutMs: 10_000 })
}

export const ADMIN_ARGS = ['--admin-password', 'admin-secret-1']

/** SUBACK return codes for `filters` (mqtt.js rejects when one is 0x80; this reads them either way). */
export function subackCodes (client: import('mqtt').MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  return new Promise((resolve, reject) => {
    client.subscribe(filters, { qos }, (err, granted) => {
      const packet = (err as { packet?: { granted?: number[] } } | null)?.packet
      if (packet?.granted) { resolve(packet.granted); return }
      if (err && !granted) { reject(err); return }
      resolve((granted ?? []).map((g) => g.qos))
    })
  })
}
