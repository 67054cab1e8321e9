import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Writable } from 'node:stream'
import { flushCorked } from './cork.ts'

/**
 * aedes' QoS 0 delivery (`client.deliver0`, made per client in its
 * constructor) costs, per subscriber and message, a lookup in
 * `client.duplicates`, a second packet copy, two closures and two
 * setImmediates, and its write sits corked until the next turn. thingmesh
 * replaces `duplicates` with a Proxy that never drops anything (the exact
 * dedupe is in hooks.authorizeForward), and a Proxy get and set per delivery
 * was the largest single cost on a subscriber node under fan-out (issue 8).
 *
 * Here the deliveries made in one turn are written together from one
 * setImmediate (deferred as aedes does, so a long fan-out cannot grow the
 * stack), in the order they were made; then the sockets are uncorked, one
 * write each, instead of a turn later; then the deliveries are completed.
 * A QoS 1/2 delivery (aedes' own setImmediate) may therefore leave before a
 * QoS 0 one made earlier in the same turn: MQTT orders deliveries per topic
 * and QoS only [MQTT-4.6.0-6].
 */

interface DeliveringClient {
  id: string
  broker?: Record<symbol, unknown> & { authorizeForward(client: DeliveringClient, packet: Qos0Packet): Qos0Packet | null | undefined }
  conn: Writable
  connecting: boolean
  connected: boolean
  errored: boolean
  _onError(err: Error | null): void
  waitForDrain(callback: (err: Error | null) => void): void
}

interface Qos0Packet { clientId?: string, nl?: boolean, qos: number, topic: string, payload: Buffer, retain?: boolean, dup?: boolean }
type Deliver = (packet: Qos0Packet, cb: () => void) => void

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as { writeToStream(packet: object, stream: Writable): boolean }
// aedes exports only its entry point; the Client class is reached by file URL.
const clientModule = await import(pathToFileURL(join(dirname(require.resolve('aedes')), 'lib', 'client.js')).href) as { default: { prototype: object } }

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
  Object.defineProperty(clientModule.default.prototype, 'deliver0', {
    configurable: true,
    get () { return undefined },
    set (this: DeliveringClient, aedesDeliver: Deliver) {
      const value = this.broker?.[marker] === true ? qos0Deliverer(this) : aedesDeliver
      Object.defineProperty(this, 'deliver0', { value, writable: true, configurable: true, enumerable: true })
    },
  })
}

/** Deliveries waiting for the next turn, three entries each: client, packet (null: nothing to write), completion. */
let queue: unknown[] = []
let scheduled = false

function qos0Deliverer (client: DeliveringClient): Deliver {
  return function deliverQoS0 (packet, cb) {
    // MQTT 5 no-local, as aedes checks it.
    const toForward = packet.clientId === client.id && packet.nl === true ? null : client.broker!.authorizeForward(client, packet)
    queue.push(client, toForward ?? null, cb)
    if (!scheduled) { scheduled = true; setImmediate(deliverQueued) }
  }
}

function deliverQueued (): void {
  scheduled = false
  // Completions may emit further publishes at once: their deliveries wait for the next turn.
  const q = queue
  queue = []
  for (let i = 0; i < q.length; i += 3) {
    const packet = q[i + 1] as Qos0Packet | null
    if (packet !== null) q[i + 1] = writeQos0(q[i] as DeliveringClient, packet, q[i + 2] as () => void)
  }
  // The bytes leave before the completions run: a completion ends a publish
  // chain (the published hook, the next packet of the publisher), which
  // would otherwise delay every delivery of the batch (same-node latency).
  flushCorked()
  for (let i = 0; i < q.length; i += 3) {
    const outcome = q[i + 1] as Error | null | typeof DRAINING
    if (outcome === DRAINING) continue
    if (outcome !== null) (q[i] as DeliveringClient)._onError(outcome)
    ;(q[i + 2] as () => void)()
  }
}

/** The delivery completes when the socket drains (`waitForDrain` took its callback). */
const DRAINING = Symbol('draining')

/** aedes' lib/write.js for one QoS 0 PUBLISH, minus the completion: returns the error to complete with, if any. */
function writeQos0 (client: DeliveringClient, packet: Qos0Packet, cb: () => void): Error | null | typeof DRAINING {
  if (!client.connecting && !client.connected) return new Error('connection closed')
  // The packet is this subscriber's own copy (aedes' subscription wrapper or
  // authorizeForward made it), but may carry the published QoS.
  const p = packet.qos === 0 ? packet : { ...packet, qos: 0 }
  try {
    if (!mqttPacket.writeToStream(p, client.conn) && !client.errored) {
      client.waitForDrain((err) => { client._onError(err); cb() })
      return DRAINING
    }
  } catch {
    return new Error('packet received not valid')
  }
  return null
}
