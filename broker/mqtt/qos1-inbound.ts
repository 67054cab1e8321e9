import type { EventEmitter } from 'node:events'
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

interface InboundPublish { cmd: string, qos: number, topic: string, messageId?: number }

interface InboundClient {
  connackSent: boolean
  connecting: boolean
  connected: boolean
  _parsingBatch: number
  _nextBatch: (err?: Error | null) => void
  _keepaliveInterval: number
  _keepaliveTimer: { refresh(): void } | null
  _parser: Parser
  broker: {
    maxTopicLevels: number
    authorizePublish(client: InboundClient, packet: InboundPublish, cb: (err?: Error | null) => void): void
    publish(packet: InboundPublish, client: InboundClient, done: (err?: Error | null) => void): void
  }
}

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
  if (packet.qos !== 1 || packet.cmd !== 'publish' || !c.connackSent || !c.connected) { aedesEnqueue!.call(this, packet); return }
  c._parsingBatch++
  handleQos1(c, packet)
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
    client.broker.publish(packet, client, done)
  })
}
