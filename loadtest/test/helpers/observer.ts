// An independent MQTT client that counts what really crossed the broker, to
// check the tool's own numbers against.

import mqtt, { type MqttClient } from 'mqtt'
import { decodePayload } from '../../payload.ts'

export interface Observer {
  readonly client: MqttClient
  /** Messages received per publisherId (payload format) or per topic otherwise. */
  readonly counts: Map<string, number>
  total(): number
  /** Resolves once `n` messages in total have arrived. */
  waitFor(n: number): Promise<void>
  close(): Promise<void>
}

export async function observe(url: string, filter: string, qos: 0 | 1 = 1): Promise<Observer> {
  const client = await mqtt.connectAsync(url, { clientId: `obs-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, protocolVersion: 4 })
  const counts = new Map<string, number>()
  let total = 0
  const waiters: { n: number; resolve: () => void }[] = []
  client.on('message', (topic, payload) => {
    const key = decodePayload(payload)?.publisherId ?? topic
    counts.set(key, (counts.get(key) ?? 0) + 1)
    total++
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (total >= waiters[i]!.n) {
        waiters[i]!.resolve()
        waiters.splice(i, 1)
      }
    }
  })
  await client.subscribeAsync(filter, { qos })
  return {
    client,
    counts,
    total: () => total,
    waitFor: (n) => (total >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    close: () => client.endAsync(true),
  }
}
