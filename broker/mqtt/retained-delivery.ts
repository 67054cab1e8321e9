import { createRequire } from 'node:module'
import type { Writable } from 'node:stream'
import { encodePublishes, publishLength } from './publish-encoding.ts'

const require = createRequire(import.meta.url)
// Read at each call, not bound once: wire-patches.ts replaces it on the module object.
const mqttPacket = require('mqtt-packet') as { writeToStream(packet: object, stream: Writable): boolean }

/** A retained message as the persistence reads it. */
export interface StoredRetained {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  /** The topic's UTF-8 length, when the reader knows it (the stored frame carries it). */
  topicBytes?: number
}

/** What is written: a PUBLISH of a retained message to a new subscription. */
export interface RetainedPublish {
  cmd: 'publish'
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: true
  dup: false
  messageId?: number
  /** Null: never deduplicated against live deliveries (as aedes). */
  brokerId: null
  brokerCounter: 0
}

/** aedes' Client, as far as sending uses it. */
export interface RetainedClient {
  id: string
  conn: Writable
  closed: boolean
  connected: boolean
  connecting: boolean
  /** Protocol level of the CONNECT (5 = MQTT 5). */
  version?: number | null
  _nextId: number
  broker: RetainedBroker
  waitForDrain(callback: (err: Error | null) => void): void
  emit(event: 'error', err: Error): boolean
}

/** aedes' broker, as far as sending uses it. */
export interface RetainedBroker {
  on(event: 'subscribe', listener: (subs: Array<{ topic: string, qos: number }>, client: RetainedClient) => void): unknown
  /** The authorizeForward hook (hooks.ts): the ACL, then the QoS downgrade; null = not delivered. */
  authorizeForward?(client: RetainedClient, packet: RetainedPublish): RetainedPublish | null | undefined
}

/** The retained messages matching some filters, in batches (one Redis reply each). */
export type RetainedSource = (filters: string[]) => AsyncIterable<StoredRetained[]>

/**
 * Sends a new subscription's retained messages [MQTT-3.3.1-6] in place of
 * aedes. aedes pipes them one by one through a Transform into
 * `client.deliverQoS`, which defers each to its own setImmediate and, via
 * write(), completes it in another: one message per event-loop turn and one
 * writev per message. A new `#` subscriber took 0.69 s for 10,000 retained
 * messages against Mosquitto's 0.07 s (issue 8). Here each batch read from
 * Redis is sent in one go, as far as the socket takes it, encoded into
 * chunks of CHUNK_BYTES, one socket write each (publish-encoding.ts; MQTT 5
 * packets go through mqtt-packet). These writes skip wire-patches.ts on
 * purpose: its CONNACK hold does not apply (aedes handles a SUBSCRIBE only
 * once its CONNACK is written) and its slow-consumer cap is for writers that
 * ignore backpressure, which this one obeys.
 *
 * Per message, as aedes: the retain flag is set, the authorizeForward hook
 * runs (the ACL, and the QoS downgrade to the granted QoS [MQTT-3.8.4-6]),
 * a QoS>0 delivery takes the client's next packet id. The socket's
 * backpressure is obeyed: once a write returns false nothing more is written
 * until 'drain', so a slow reader costs the node its socket's buffer (at
 * most a chunk past its high-water mark) and two batches (the one being
 * written and the next, read meanwhile). aedes'
 * waitForDrain is called as for any write that fills the socket, which arms
 * the drain timeout that disconnects a client whose socket stays full
 * (--drain-timeout-ms).
 *
 * aedes gives the persistence only the filters, not the client. It emits
 * 'subscribe' with the client and the granted filters, then, in the same
 * synchronous run, asks the persistence for the retained stream of exactly
 * those filters: `claim` pairs the two, and the persistence returns aedes
 * an empty stream for a claimed request.
 */
export class RetainedDelivery {
  private pending: { client: RetainedClient, filters: string[] } | null = null

  constructor (broker: RetainedBroker, private readonly source: RetainedSource, private readonly onError?: (clientId: string, err: Error) => void) {
    broker.on('subscribe', (subs, client) => {
      // aedes asks for the retained messages of the filters it granted (0x80 = refused).
      const filters = subs.filter((s) => s.qos !== 128).map((s) => s.topic)
      const pending = { client, filters }
      this.pending = pending
      // The request follows synchronously or not at all (every filter refused).
      queueMicrotask(() => { if (this.pending === pending) this.pending = null })
    })
  }

  /** True if the retained messages of `filters` are sent here (the caller gives aedes nothing). */
  claim (filters: string[]): boolean {
    const p = this.pending
    this.pending = null
    if (p === null || !sameFilters(p.filters, filters) || p.client.broker.authorizeForward === undefined) return false
    void this.send(p.client, filters).catch((err: Error) => this.onError?.(p.client.id, err))
    return true
  }

  private async send (client: RetainedClient, filters: string[]): Promise<void> {
    const batches = this.source(filters)[Symbol.asyncIterator]()
    const chunk = new Chunk()
    try {
      let next = batches.next()
      for (;;) {
        const { done, value: batch } = await next
        if (done === true) return
        // The next Redis read overlaps this batch's writes: at most two batches are held.
        next = batches.next()
        next.catch(noop)
        for (const stored of batch) {
          if (!open(client)) return
          const packet = forwardable(client, stored)
          if (packet === null) continue
          if (client.version === 5) {
            if (!write(client, packet) && !await drained(client)) return
            continue
          }
          if (!chunk.add(packet, topicBytes(packet, stored))) {
            // aedes' write() treats a packet it cannot encode as a client error.
            client.emit('error', new Error(`retained message on ${packet.topic.slice(0, 256)} cannot be encoded`))
            return
          }
          if (chunk.bytes >= CHUNK_BYTES && !chunk.writeTo(client.conn) && !await drained(client)) return
        }
        if (!open(client)) return
        if (!chunk.writeTo(client.conn) && !await drained(client)) return
      }
    } finally {
      // Ends the reads when the client went early.
      void batches.return?.(undefined)?.catch(noop)
    }
  }
}

/** The UTF-8 length of the packet's topic: the stored frame's when the hook kept its topic. */
function topicBytes (packet: RetainedPublish, stored: StoredRetained): number {
  return packet.topic === stored.topic && stored.topicBytes !== undefined ? stored.topicBytes : Buffer.byteLength(packet.topic)
}

/** Encoded bytes handed to the socket at a time (3.1.1 clients). */
const CHUNK_BYTES = 64 * 1024

/** PUBLISH packets waiting to be written as one Buffer. */
class Chunk {
  private packets: RetainedPublish[] = []
  private topicBytes: number[] = []
  bytes = 0

  /** False if the packet cannot be encoded; `t` is its topic's UTF-8 length. */
  add (packet: RetainedPublish, t: number): boolean {
    const n = publishLength(t, packet)
    if (n < 0) return false
    this.packets.push(packet)
    this.topicBytes.push(t)
    this.bytes += n
    return true
  }

  /** What `conn.write` returned (true when there was nothing to write). */
  writeTo (conn: Writable): boolean {
    if (this.packets.length === 0) return true
    const buf = encodePublishes(this.packets, this.topicBytes, this.bytes)
    this.packets = []
    this.topicBytes = []
    this.bytes = 0
    return conn.write(buf)
  }
}

function sameFilters (a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((f, i) => f === b[i])
}

function open (client: RetainedClient): boolean {
  return !client.closed && !client.conn.destroyed && (client.connected || client.connecting)
}

/** The packet as delivered to this client, or null if its ACL denies the topic. */
function forwardable (client: RetainedClient, stored: StoredRetained): RetainedPublish | null {
  const packet: RetainedPublish = { cmd: 'publish', topic: stored.topic, payload: stored.payload, qos: stored.qos, retain: true, dup: false, brokerId: null, brokerCounter: 0 }
  const out = client.broker.authorizeForward!(client, packet)
  if (!out) return null
  if (out.qos > 0) {
    // As aedes' QoSPacket: ids cycle 1..65535.
    out.messageId = client._nextId
    client._nextId = client._nextId >= 65535 ? 1 : client._nextId + 1
  }
  return out
}

/** False when the socket's buffer is full. */
function write (client: RetainedClient, packet: RetainedPublish): boolean {
  try {
    return mqttPacket.writeToStream(packet, client.conn)
  } catch (err) {
    // aedes' write() treats a packet it cannot encode as a client error.
    client.emit('error', new Error(`retained message not sent: ${(err as Error).message}`))
    return false
  }
}

/** Resolves true once the socket drained, false if the connection ended first. */
function drained (client: RetainedClient): Promise<boolean> {
  const conn = client.conn
  if (!open(client)) return Promise.resolve(false)
  client.waitForDrain(noop)
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      conn.off('drain', onDrain)
      conn.off('close', onClose)
      resolve(ok && open(client))
    }
    const onDrain = (): void => done(true)
    const onClose = (): void => done(false)
    conn.on('drain', onDrain)
    conn.on('close', onClose)
  })
}

function noop (): void {}
