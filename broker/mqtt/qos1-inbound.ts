import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { topicLevels } from './topics.ts'
import { withholdPuback } from './wire-patches.ts'

/**
 * aedes handles an inbound QoS 1 PUBLISH as: authorize, write the PUBACK,
 * then, from the setImmediate that write() completes with, publish. thingmesh
 * withholds that PUBACK until the publish is routed anyway (wire-patches.ts),
 * so the turn between the two only delays the publish, costs a PubAck object,
 * an immediate and runSeries' closures per message, and splits the
 * deliveries of one socket read over several turns (several writes to each
 * subscriber instead of one). Here, once the client's CONNACK is out, a QoS
 * 1 PUBLISH is authorized and published in the turn it was parsed, with
 * aedes' own checks and errors (lib/handlers/publish.js) and its flow control
 * (the parser reads on once every packet of the batch completed). Everything
 * else goes through aedes' handler.
 */

interface Parser extends EventEmitter { client: InboundClient }

interface InboundPublish { cmd: string, qos: number, topic: string, messageId?: number, retain?: boolean }

/** A client QoS 1 publish that skips aedes' series: what may fill an offline queue, and publishes still in that series. */
interface DirectRoute { mayQueue(topic: string): boolean, throughBroker: number }

const DIRECT = Symbol('thingmesh.directQos1')
type Done = (err?: Error | null) => void

interface InboundClient {
  clean: boolean
  connackSent: boolean
  connecting: boolean
  connected: boolean
  _parsingBatch: number
  _nextBatch: (err?: Error | null) => void
  _keepaliveInterval: number
  _keepaliveTimer: { refresh(): void } | null
  _parser: Parser
  id: string
  broker: {
    maxTopicLevels: number
    authorizePublish(client: InboundClient, packet: InboundPublish, cb: (err?: Error | null) => void): void
    publish(packet: InboundPublish, client: InboundClient, done: Done): void
    published(packet: InboundPublish, client: InboundClient, done: Done): void
    listenerCount(event: string): number
    readonly mq: { emit(packet: object, done: Done): unknown }
    [DIRECT]?: DirectRoute
  }
}

const require = createRequire(import.meta.url)
/** aedes' own copy of a publish (brokerId, brokerCounter, the fields it forwards): the same object its series emits. */
const AedesPacket = require('aedes-packet') as new (original: object, broker: object) => { clientId?: string }

type Enqueue = (this: Parser, packet: InboundPublish) => void

/** aedes' `enqueue` (one module-level function in aedes' lib/client.js, the same for every parser). */
let aedesEnqueue: Enqueue | undefined

/**
 * Replaces aedes' `enqueue` listener on the client's parser (once, right
 * after aedes built the client). The listener is swapped in place in the
 * parser's listener table: removeListener would `delete` its key and turn
 * that table into a dictionary, half a kilobyte more per idle connection
 * (test/bench/memory-breakdown.ts, heap snapshot). One shared function, no
 * closure per client.
 */
export function publishQos1InTurn (client: InboundClient): void {
  const events = (client._parser as unknown as { _events?: Record<string, unknown> })._events
  const current = events?.packet
  if (typeof current !== 'function' || current.name !== 'enqueue') return // not the shape we know: aedes handles everything
  aedesEnqueue ??= current as Enqueue
  if (current !== aedesEnqueue) return
  events!.packet = enqueueQos1InTurn
}

function enqueueQos1InTurn (this: Parser, packet: InboundPublish): void {
  const c = this.client
  if (packet.cmd === 'puback' && c.clean && c.connackSent && c.connected && c.broker[DIRECT] !== undefined && c.broker.listenerCount('ack') === 0) {
    // aedes' PUBACK handler asks the persistence for the acknowledged
    // message (an async call, a promise, two closures) and emits 'ack' with
    // it. RedisPersistence stores nothing for a clean session and answers
    // undefined at once (outgoingClearMessageId), and nobody listens to
    // 'ack': what is left is completing in a microtask, as aedes does.
    c._parsingBatch++
    queueMicrotask(c._nextBatch)
  } else if (packet.qos !== 1 || packet.cmd !== 'publish' || !c.connackSent || !c.connected) {
    aedesEnqueue!.call(this, packet)
    return
  } else {
    c._parsingBatch++
    handleQos1(c, packet)
  }
  // aedes' handle(): any packet counts as activity [MQTT-3.1.2-24].
  if (c._keepaliveInterval > 0) c._keepaliveTimer?.refresh()
}

function handleQos1 (client: InboundClient, packet: InboundPublish): void {
  const done = client._nextBatch
  const topic = packet.topic
  if (topic.length === 0) { done(new Error('empty topic not allowed in PUBLISH')); return }
  if (topic.indexOf('#') > -1) { done(new Error('# is not allowed in PUBLISH')); return }
  if (topic.indexOf('+') > -1) { done(new Error('+ is not allowed in PUBLISH')); return }
  if (topicLevels(topic) > client.broker.maxTopicLevels) { done(new Error('topic has too many levels')); return }
  client.broker.authorizePublish(client, packet, (err) => {
    if (err) { done(err); return }
    if (!client.connecting && !client.connected) { done(new Error('connection closed')); return }
    // What aedes' PUBACK write did: the PUBACK waits for the publish chain.
    withholdPuback(client, packet.messageId!)
    publish(client, packet, done)
  })
}

/**
 * For a broker on RedisPersistence (cluster nodes; `mayQueue` is its
 * mayQueue): client QoS 1 publishes skip aedes' publish series where it has
 * nothing to do, and a clean session's PUBACK skips the persistence call.
 */
export function publishQos1Directly (broker: object, mayQueue: (topic: string) => boolean): void {
  (broker as InboundClient['broker'])[DIRECT] = { mayQueue, throughBroker: 0 }
}

/**
 * aedes' publish of a QoS 1 PUBLISH is a series (a Packet copy, the series
 * state, the offline-enqueue step's object, closure and two promise turns,
 * the emit, the published hook, a 'publish' event) per message. Its steps
 * are taken here directly when all but the emit and the hook would do
 * nothing: not retained (no store), no stored subscription can match the
 * topic (no offline queue: RedisPersistence.mayQueue), no '$' topic (admin
 * requests are taken out in broker.publish, intercept.ts), nobody listens to
 * 'publish'. While a publish sent through the series is on its way, the
 * next ones follow it there, so none overtakes an earlier one.
 */
function publish (client: InboundClient, packet: InboundPublish, done: Done): void {
  const broker = client.broker
  const route = broker[DIRECT]
  if (route === undefined) { broker.publish(packet, client, done); return }
  if (route.throughBroker > 0 || packet.retain === true || packet.topic.charCodeAt(0) === 36 || route.mayQueue(packet.topic) || broker.listenerCount('publish') > 0) {
    route.throughBroker++
    broker.publish(packet, client, (err) => { route.throughBroker--; done(err) })
    return
  }
  // aedes' emitPacket and callPublished: the hook gets the client's packet, subscribers the copy.
  const p = new AedesPacket(packet, broker)
  p.clientId = client.id
  broker.mq.emit(p, (err) => {
    if (err) { done(err); return }
    broker.published(packet, client, done)
  })
}
