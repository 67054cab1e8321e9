import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Writable } from 'node:stream'

/**
 * aedes' QoS 0 delivery (`client.deliver0`, made per client in its
 * constructor) costs, per subscriber and message, a lookup in
 * `client.duplicates`, a second packet copy, two closures and two
 * setImmediates. thingmesh replaces `duplicates` with a Proxy that never
 * drops anything (the exact dedupe is in hooks.authorizeForward), and a Proxy
 * get and set per delivery was the largest single cost on a subscriber node
 * under fan-out (issue 8). This deliverer does what aedes' does, in the same
 * order and with the same deferrals (write on the next turn, completion on
 * the turn after), minus that dedupe and the garbage.
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

function qos0Deliverer (client: DeliveringClient): Deliver {
  return function deliverQoS0 (packet, cb) {
    // MQTT 5 no-local, as aedes checks it.
    if (packet.clientId === client.id && packet.nl === true) { setImmediate(cb); return }
    const toForward = client.broker!.authorizeForward(client, packet)
    // As aedes: a later turn, so a long fan-out cannot grow the stack.
    if (toForward) setImmediate(writeQos0, client, toForward, cb)
    else setImmediate(cb)
  }
}

/** aedes' lib/write.js for one QoS 0 PUBLISH. */
function writeQos0 (client: DeliveringClient, packet: Qos0Packet, cb: () => void): void {
  let error: Error | null = null
  if (client.connecting || client.connected) {
    // The packet is this subscriber's own copy (aedes' subscription wrapper or
    // authorizeForward made it), but may carry the published QoS.
    const p = packet.qos === 0 ? packet : { ...packet, qos: 0 }
    try {
      if (!mqttPacket.writeToStream(p, client.conn) && !client.errored) {
        client.waitForDrain((err) => { client._onError(err); cb() })
        return
      }
    } catch {
      error = new Error('packet received not valid')
    }
  } else {
    error = new Error('connection closed')
  }
  setImmediate(completed, client, error, cb)
}

function completed (client: DeliveringClient, err: Error | null, cb: () => void): void {
  client._onError(err)
  cb()
}
