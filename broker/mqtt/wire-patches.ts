import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { stateOf } from './client-state.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { writeToStream: WriteToStream }
type WriteToStream = (packet: { cmd: string, messageId?: number, sessionPresent?: boolean, returnCode?: number }, stream: Writable, opts?: object) => boolean

export const THINGMESH_BROKER = Symbol.for('thingmesh.broker')
export const original: WriteToStream = mqttPacket.writeToStream
let installed = false

/**
 * aedes writes every packet through mqtt-packet's `writeToStream`, and two of
 * its choices there break MQTT guarantees we need:
 * - it writes PUBACK before the publish is routed, so a crash or a Redis
 *   outage loses messages the client was told are safe. We withhold each
 *   PUBACK until the publish chain completes (see `releasePuback`), and drop
 *   it if the chain fails: the client then resends, as QoS1 intends;
 * - its CONNACK says "session present" only when the session had
 *   subscriptions [MQTT-3.2.2-2]. We write the flag thingmesh knows.
 * Only packets written to clients of a thingmesh broker are touched.
 */
export function installWirePatches (): void {
  if (installed) return
  installed = true
  mqttPacket.writeToStream = function patchedWriteToStream (packet, stream, opts) {
    const client = (stream as Writable & { client?: { broker?: Record<symbol, unknown> } }).client
    if (client?.broker?.[THINGMESH_BROKER] === true) {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) {
        stateOf(client).pubacks.push({ messageId: packet.messageId, routed: false })
        return true
      }
      if (packet.cmd === 'connack' && packet.returnCode === 0) {
        packet = { ...packet, sessionPresent: stateOf(client).sessionPresent }
      }
    }
    return original(packet, stream, opts)
  }
}

/** The publish with this id is routed: send its PUBACK, and any before it, in order. */
export function releasePuback (client: object & { conn: Writable }, messageId: number): void {
  const pending = stateOf(client).pubacks
  const entry = pending.find((p) => p.messageId === messageId && !p.routed)
  if (!entry) return
  entry.routed = true
  while (pending.length > 0 && pending[0].routed) {
    const { messageId: id } = pending.shift()!
    if (!client.conn.destroyed) original({ cmd: 'puback', messageId: id }, client.conn)
  }
}
