import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { aedesClientPrototype, AedesQoSPacket } from './aedes-client.ts'
import { flushCorked } from './cork.ts'
import { socketFull } from './slow-consumers.ts'

/**
 * aedes' deliverers (`client.deliver0` and `client.deliverQoS`, made per
 * client in its constructor) cost, per subscriber and message, a lookup in
 * `client.duplicates`, packet copies, closures and two setImmediates (one
 * before the write, one after it), and the write sits corked until the next
 * turn. thingmesh replaces `duplicates` with a Proxy that never drops
 * anything (the exact dedupe is in hooks.authorizeForward), and a Proxy get
 * and set per delivery was the largest single cost on a subscriber node
 * under fan-out (issue 8).
 *
 * Here a delivery is written at once, into the socket's held bytes
 * (cork.ts: nothing is sent before the flush), so the packet is garbage as soon
 * as it is encoded: holding every packet of a burst until a later turn (as
 * aedes does) kept tens of thousands alive across scavenges, which then took
 * a quarter of a node's CPU under fan-out. From one setImmediate per turn
 * (deferred as aedes does, so a long fan-out cannot grow the stack) the
 * sockets are flushed, one write each, then the deliveries are completed.
 * Deliveries to a client are written in the order they are made, QoS 0 and
 * QoS 1/2 alike [MQTT-4.6.0-6]; only a persistent session's QoS 1/2 delivery
 * waits for its packet id to be stored first (as in aedes).
 */

interface Subscription { qos: number }

interface DeliveringClient {
  id: string
  clean: boolean
  broker?: Record<symbol, unknown> & {
    authorizeForward(client: DeliveringClient, packet: DeliveryPacket): DeliveryPacket | null | undefined
    persistence: {
      outgoingUpdate(client: DeliveringClient, packet: object): Promise<unknown>
      outgoingClearMessageId(client: DeliveringClient, packet: object): Promise<unknown>
    }
  }
  conn: Writable
  connecting: boolean
  connected: boolean
  errored: boolean
  subscriptions: Record<string, Subscription | undefined>
  _nextId: number
  deliver0: Deliver
  _onError(err: Error | null): void
}

interface DeliveryPacket { clientId?: string, nl?: boolean, qos: number, topic: string, payload: Buffer, retain?: boolean, dup?: boolean, messageId?: number }
type Deliver = (packet: DeliveryPacket, cb: () => void) => void

/** What is written for a clean session's QoS 1/2 delivery: the fields mqtt-packet reads, no more. */
interface OutgoingPublish { cmd: 'publish', topic: string, payload: Buffer, qos: number, retain: boolean, dup: boolean, messageId: number }

const require = createRequire(import.meta.url)
// Read at each call: wire-patches.ts replaces it on the module object.
const mqttPacket = require('mqtt-packet') as { writeToStream(packet: object, stream: Writable): boolean }

let installed = false

/**
 * Clients of brokers marked with `marker` get these deliverers as their
 * `deliver0` and `deliverQoS`. aedes assigns both in the constructor (after
 * `this.broker`) and subscriptions capture them when made, so the
 * assignments themselves are intercepted. A marked client's deliverer is
 * made on its first use (the prototype's getter), not in the constructor: a
 * connection that never subscribes or receives never needs one, and each is
 * a closure, its context and, through tsx's keepNames (esbuild's `__name`
 * redefines `name`), a dictionary of properties: 0.36 KB per deliverer and
 * idle connection (test/bench/memory-breakdown.ts, heap snapshot).
 */
export function installDeliverers (marker: symbol): void {
  if (installed) return
  installed = true
  intercept('deliver0', marker, qos0Deliverer)
  intercept('deliverQoS', marker, qosDeliverer)
}

function intercept (name: 'deliver0' | 'deliverQoS', marker: symbol, make: (client: DeliveringClient) => Deliver): void {
  Object.defineProperty(aedesClientPrototype, name, {
    configurable: true,
    get (this: DeliveringClient) {
      // Reached only by a marked client (any other got its own property from the setter).
      if (this.broker?.[marker] !== true) return undefined
      return own(this, name, make(this))
    },
    set (this: DeliveringClient, aedesDeliver: Deliver) {
      if (this.broker?.[marker] !== true) own(this, name, aedesDeliver)
    },
  })
}

function own (client: DeliveringClient, name: 'deliver0' | 'deliverQoS', value: Deliver): Deliver {
  Object.defineProperty(client, name, { value, writable: true, configurable: true, enumerable: true })
  return value
}

/** Deliveries written this turn, three entries each: client, outcome (an error, or null), completion. */
let written: unknown[] = []
let scheduled = false

function complete (client: DeliveringClient, outcome: Error | null, cb: () => void): void {
  written.push(client, outcome, cb)
  if (!scheduled) { scheduled = true; setImmediate(completeWritten) }
}

function qos0Deliverer (client: DeliveringClient): Deliver {
  return function deliverQoS0 (packet, cb) {
    // MQTT 5 no-local, as aedes checks it.
    const toForward = packet.clientId === client.id && packet.nl === true ? null : client.broker!.authorizeForward(client, packet)
    // The packet is this subscriber's own copy (aedes' subscription wrapper or
    // authorizeForward made it), but may carry the published QoS.
    complete(client, toForward ? writePublish(client, toForward.qos === 0 ? toForward : { ...toForward, qos: 0 }) : null, cb)
  }
}

/**
 * aedes' deliverQoS, written in the same turn. A clean session's delivery
 * needs no packet object beyond what is encoded: the packet id is the
 * client's next one (as aedes' QoSPacket takes it), the QoS is lowered to
 * that of the client's subscription to the very topic if lower (as aedes).
 * A persistent session's delivery is aedes' QoSPacket, whose packet id is
 * stored (outgoingUpdate) before it is written, so that its PUBACK, or a
 * resend after a reconnect, finds the queued message.
 */
function qosDeliverer (client: DeliveringClient): Deliver {
  return function deliverQoS (packet, cb) {
    // Published at QoS 0: delivered at QoS 0 whatever the subscription's QoS.
    if (packet.qos === 0) { client.deliver0(packet, cb); return }
    const toForward = packet.clientId === client.id && packet.nl === true ? null : client.broker!.authorizeForward(client, packet)
    if (!toForward) {
      // Not for this client after all: a persistent session's queued copy goes (as aedes).
      if (client.clean === false) client.broker!.persistence.outgoingClearMessageId(client, packet).then(noop, noop)
      complete(client, null, cb)
      return
    }
    if (client.clean || toForward.retain === true) {
      complete(client, writePublish(client, outgoing(client, toForward)), cb)
      return
    }
    const qosPacket = new AedesQoSPacket(toForward, client)
    qosPacket.qos = grantedQos(client, qosPacket.topic, qosPacket.qos)
    client.broker!.persistence.outgoingUpdate(client, qosPacket).then(
      () => { complete(client, writePublish(client, qosPacket), cb) },
      (err: Error) => { complete(client, err, cb) })
  }
}

/** The bytes aedes' QoSPacket would have written, taking the client's next packet id unless the packet has one. */
function outgoing (client: DeliveringClient, p: DeliveryPacket): OutgoingPublish {
  let messageId = p.messageId
  if (!messageId) {
    messageId = client._nextId
    client._nextId = messageId >= 65535 ? 1 : messageId + 1
  }
  return { cmd: 'publish', topic: p.topic, payload: p.payload, qos: grantedQos(client, p.topic, p.qos), retain: p.retain === true, dup: p.dup === true, messageId }
}

/** aedes lowers a delivery's QoS to that of the client's subscription to this exact topic, if it has one. */
function grantedQos (client: DeliveringClient, topic: string, qos: number): number {
  const sub = client.subscriptions[topic]
  return sub !== undefined && (sub.qos || 0) < qos ? sub.qos : qos
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

/** aedes' lib/write.js for one PUBLISH, minus the completion: returns the error to complete with, if any. */
function writePublish (client: DeliveringClient, packet: object): Error | null {
  if (!client.connecting && !client.connected) return new Error('connection closed')
  try {
    // A full socket does not hold the delivery up (slow-consumers.ts).
    if (!mqttPacket.writeToStream(packet, client.conn) && !client.errored) socketFull(client as never)
  } catch {
    return new Error('packet received not valid')
  }
  return null
}

function noop (): void {}
