import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { aedesClientPrototype } from './aedes-client.ts'
import { flushCorked } from './cork.ts'
import { socketFull } from './slow-consumers.ts'

/**
 * aedes' QoS 0 delivery (`client.deliver0`, made per client in its
 * constructor) costs, per subscriber and message, a lookup in
 * `client.duplicates`, a second packet copy, two closures and two
 * setImmediates, and its write sits corked until the next turn. thingmesh
 * replaces `duplicates` with a Proxy that never drops anything (the exact
 * dedupe is in hooks.authorizeForward), and a Proxy get and set per delivery
 * was the largest single cost on a subscriber node under fan-out (issue 8).
 *
 * Here a delivery is written at once, into the socket's held bytes
 * (cork.ts: nothing is sent before the flush), so the packet is garbage as soon
 * as it is encoded: holding every packet of a burst until a later turn (as
 * aedes does) kept tens of thousands alive across scavenges, which then took
 * a quarter of a node's CPU under fan-out. From one setImmediate per turn
 * (deferred as aedes does, so a long fan-out cannot grow the stack) the
 * sockets are flushed, one write each, then the deliveries are completed.
 * A QoS 0 delivery may therefore leave before a QoS 1/2 one made earlier in
 * the same turn (aedes' own setImmediate writes those): MQTT orders
 * deliveries per topic and QoS only [MQTT-4.6.0-6].
 */

interface DeliveringClient {
  id: string
  broker?: Record<symbol, unknown> & { authorizeForward(client: DeliveringClient, packet: Qos0Packet): Qos0Packet | null | undefined }
  conn: Writable
  connecting: boolean
  connected: boolean
  errored: boolean
  _onError(err: Error | null): void
}

interface Qos0Packet { clientId?: string, nl?: boolean, qos: number, topic: string, payload: Buffer, retain?: boolean, dup?: boolean }
type Deliver = (packet: Qos0Packet, cb: () => void) => void

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { writeToStream(packet: object, stream: Writable): boolean }

let installed = false

/**
 * Clients of brokers marked with `marker` get this deliverer as their
 * `deliver0`. aedes assigns `this.deliver0` in the constructor (after
 * `this.broker`) and subscriptions capture it when made, so the assignment
 * itself is intercepted.
 */
export function installQos0Delivery (marker: symbol): void {
  if (installed) return
  installed = true
  Object.defineProperty(aedesClientPrototype, 'deliver0', {
    configurable: true,
    get () { return undefined },
    set (this: DeliveringClient, aedesDeliver: Deliver) {
      const value = this.broker?.[marker] === true ? qos0Deliverer(this) : aedesDeliver
      Object.defineProperty(this, 'deliver0', { value, writable: true, configurable: true, enumerable: true })
    },
  })
}

/** Deliveries written this turn, three entries each: client, outcome (an error, or null), completion. */
let written: unknown[] = []
let scheduled = false

function qos0Deliverer (client: DeliveringClient): Deliver {
  return function deliverQoS0 (packet, cb) {
    // MQTT 5 no-local, as aedes checks it.
    const toForward = packet.clientId === client.id && packet.nl === true ? null : client.broker!.authorizeForward(client, packet)
    written.push(client, toForward ? writeQos0(client, toForward) : null, cb)
    if (!scheduled) { scheduled = true; setImmediate(completeWritten) }
  }
}

function completeWritten (): void {
  scheduled = false
  // Completions may emit further publishes at once: theirs complete on the next turn.
  const w = written
  written = []
  // The bytes leave before the completions run: a completion ends a publish
  // chain (the published hook, the next packet of the publisher), which
  // would otherwise delay every delivery of the batch (same-node latency).
  flushCorked()
  for (let i = 0; i < w.length; i += 3) {
    const outcome = w[i + 1] as Error | null
    if (outcome !== null) (w[i] as DeliveringClient)._onError(outcome)
    ;(w[i + 2] as () => void)()
  }
}

/** aedes' lib/write.js for one QoS 0 PUBLISH, minus the completion: returns the error to complete with, if any. */
function writeQos0 (client: DeliveringClient, packet: Qos0Packet): Error | null {
  if (!client.connecting && !client.connected) return new Error('connection closed')
  // The packet is this subscriber's own copy (aedes' subscription wrapper or
  // authorizeForward made it), but may carry the published QoS.
  const p = packet.qos === 0 ? packet : { ...packet, qos: 0 }
  try {
    // A full socket does not hold the delivery up (slow-consumers.ts).
    if (!mqttPacket.writeToStream(p, client.conn) && !client.errored) socketFull(client as never)
  } catch {
    return new Error('packet received not valid')
  }
  return null
}
