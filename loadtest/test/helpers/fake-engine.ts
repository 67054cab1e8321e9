// A stand-in for the thing engine, just enough for the fleet scenario:
// answers $admin/things/put and turns each property update into a state
// notification on things/{thingId}/state.

import mqtt, { type MqttClient } from 'mqtt'

export interface FakeEngine {
  readonly client: MqttClient
  readonly created: Set<string>
  close(): Promise<void>
}

export async function startFakeEngine(url: string): Promise<FakeEngine> {
  const client = await mqtt.connectAsync(url, { clientId: `fake-engine-${process.pid}`, protocolVersion: 4 })
  const created = new Set<string>()
  const state = new Map<string, Record<string, unknown>>()
  client.on('message', (topic, payload) => {
    if (topic === '$admin/things/put') {
      const req = JSON.parse(payload.toString()) as { requestId: string; replyTo: string; id: string; thing: unknown }
      created.add(req.id)
      client.publish(req.replyTo, JSON.stringify({ v: 1, requestId: req.requestId, ok: true }), { qos: 1 })
      return
    }
    const m = /^things\/([^/]+)\/properties\/([^/]+)$/.exec(topic)
    if (m === null) return
    const [, thingId, name] = m
    const props = state.get(thingId!) ?? {}
    props[name!] = JSON.parse(payload.toString())
    state.set(thingId!, props)
    client.publish(`things/${thingId}/state`, JSON.stringify({ thingId, properties: props }), { qos: 1 })
  })
  await client.subscribeAsync({ '$admin/things/put': { qos: 1 }, 'things/+/properties/+': { qos: 1 } })
  return { client, created, close: () => client.endAsync(true) }
}
