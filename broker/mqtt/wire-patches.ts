import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { stateOf } from './client-state.ts'
import { flushHeld, holdCork, writeHeld } from './cork.ts'
import { installDeliverers } from './delivery.ts'
import { installMemoryPatches } from './memory-patches.ts'
import { installSlowConsumerGuard, shedSlowConsumer } from './slow-consumers.ts'
import { encodePublish, type Publish } from './shared-encoding.ts'

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
 *   subscriptions [MQTT-3.2.2-2]. We write the flag thingmesh knows;
 * - a persistent session's subscriptions are restored before its CONNACK is
 *   written, and live messages matching them are written at once, ahead of
 *   the CONNACK [MQTT-3.2.0-1]. mqtt.js handles incoming packets one at a
 *   time and cannot acknowledge a QoS1 PUBLISH before it is connected, so
 *   the CONNACK behind it is never read: the client sits until its connect
 *   timeout, closes, and the broker publishes its will (issue 7, the stall
 *   after a drain). Such deliveries wait and follow the CONNACK.
 * Only packets written to clients of a thingmesh broker are touched.
 */
export function installWirePatches (): void {
  if (installed) return
  installed = true
  installMemoryPatches()
  installSlowConsumerGuard(THINGMESH_BROKER)
  installDeliverers(THINGMESH_BROKER)
  mqttPacket.writeToStream = function patchedWriteToStream (packet, stream, opts) {
    const client = (stream as Writable & { client?: { broker?: Record<symbol, unknown> } }).client
    if (client?.broker?.[THINGMESH_BROKER] === true) {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) {
        withholdPuback(client, packet.messageId)
        return true
      }
      const state = stateOf(client)
      if (packet.cmd === 'connack') {
        flushHeld(stream)
        state.connackWritten = true
        const held = state.beforeConnack
        state.beforeConnack = null
        if (packet.returnCode !== 0) return original(packet, stream, opts)
        const ok = original({ ...packet, sessionPresent: state.sessionPresent }, stream, opts)
        if (held === null) return ok
        holdCork(stream)
        let flowing = ok
        for (const h of held) flowing = original(h.packet as Parameters<WriteToStream>[0], stream, h.opts)
        return flowing
      }
      if (packet.cmd === 'publish') {
        if (!state.connackWritten) {
          // Reported written: aedes tracks QoS1 deliveries until their PUBACK either way.
          (state.beforeConnack ??= []).push({ packet, opts })
          return true
        }
        if (shedSlowConsumer(client as never, stream, packet as { qos?: number })) return true
        const shared = encodePublish(packet as Publish, opts as { protocolVersion?: number } | undefined)
        if (shared?.payload === null) return writeHeld(stream, shared.head)
        flushHeld(stream)
        holdCork(stream)
        if (shared !== undefined) {
          if (stream.destroyed) return false
          stream.write(shared.head)
          return stream.write(shared.payload)
        }
        return original(packet, stream, opts)
      }
      flushHeld(stream)
    }
    return original(packet, stream, opts)
  }
}

/** The PUBACK of an inbound QoS 1 publish: sent by `releasePuback` once the publish is routed, in arrival order [MQTT-4.6.0-2]. */
export function withholdPuback (client: object, messageId: number): void {
  stateOf(client).pubacks.push({ messageId, routed: false })
}

/**
 * The publish with this id is routed: send its PUBACK, and any before it, in
 * order. PUBACKs are held with the socket's other small packets (cork.ts) and
 * leave with them at the end of the turn: written one by one through
 * mqtt-packet, each was a writev of its own (three chunks, a cork and a
 * nextTick), 19% of a standalone node's CPU under the QoS1 bench (issue 8).
 */
export function releasePuback (client: object & { conn: Writable }, messageId: number): void {
  const pending = stateOf(client).pubacks
  const entry = pending.find((p) => p.messageId === messageId && !p.routed)
  if (!entry) return
  entry.routed = true
  let n = 0
  while (n < pending.length && pending[n].routed) n++
  if (n === 0) return
  const released = pending.splice(0, n)
  if (client.conn.destroyed) return
  writeHeld(client.conn, pubackBytes(released))
}

/** PUBACK packets [MQTT-3.4]: 0x40, Remaining Length 2, the packet id. */
function pubackBytes (entries: Array<{ messageId: number }>): Buffer {
  const buf = Buffer.allocUnsafe(4 * entries.length)
  for (let i = 0, o = 0; i < entries.length; i++, o += 4) {
    buf[o] = 0x40
    buf[o + 1] = 2
    buf.writeUInt16BE(entries[i].messageId, o + 2)
  }
  return buf
}
