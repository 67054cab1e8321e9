import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { ThingmeshError } from '../errors.ts'
import { filterProblem, isReserved, matches, topicProblem } from './topics.ts'
import { firstDelivery, stateOf } from './client-state.ts'
import { releasePuback } from './wire-patches.ts'

/* aedes' Client, as far as the hooks use it. */
export interface AedesClient {
  id: string
  clean: boolean
  closed: boolean
  conn: import('node:stream').Duplex
  subscriptions: Record<string, { qos: number }>
  close(done?: () => void): void
  _disconnected?: boolean
}

export interface SessionHooks {
  /** Claims the client id cluster-wide; resolves once the previous holder has flushed. */
  claim(client: AedesClient): Promise<void>
}

export interface HooksContext {
  log: Logger
  metrics: Metrics
  allowAnonymous: boolean
  sessions: SessionHooks | null
  localClient(id: string): AedesClient | undefined
  /**
   * Makes a client publish durable where it must be (the thing engine's
   * partition log) before its PUBACK is released; a rejection withholds the
   * PUBACK, so the client resends.
   */
  ingest?: (packet: { topic: string, qos: number, payload: Buffer }, client: AedesClient) => Promise<void>
}

type Cb<T = void> = (err: Error | null, result?: T) => void

/**
 * The aedes hooks: where thingmesh's policy meets the protocol engine.
 */
export function createHooks (ctx: HooksContext) {
  const { log, metrics } = ctx
  /** Standalone node only: client ids with a persistent session, for CONNACK session-present. */
  const localSessions = new Set<string>()

  function refuse (client: AedesClient | null, reason: string, detail: Record<string, unknown>): void {
    metrics.rejected.inc({ reason })
    log.info({ event: 'client.refused', reason, clientId: client?.id, ...detail }, 'client refused')
  }

  return {
    authenticate (client: AedesClient, username: string | undefined, _password: Buffer | undefined, cb: (err: (Error & { returnCode?: number }) | null, ok?: boolean) => void): void {
      if (!ctx.allowAnonymous && !username) {
        refuse(client, 'not_authorized', {})
        const err = Object.assign(new ThingmeshError('BROKER_NOT_AUTHORIZED', 'credentials required'), { returnCode: 5 })
        cb(err, false)
        return
      }
      // A second connection with this id on this node: close the first here,
      // before aedes stores the new will, so the old connection's will cleanup
      // cannot delete it, and no will is published for a client that is back.
      const existing = ctx.localClient(client.id)
      const claimed = (): void => {
        if (ctx.sessions === null) {
          stateOf(client).sessionPresent = !client.clean && localSessions.has(client.id)
          if (client.clean) localSessions.delete(client.id); else localSessions.add(client.id)
          cb(null, true)
          return
        }
        ctx.sessions.claim(client).then(() => { cb(null, true) }, (err: Error) => {
          log.warn({ event: 'client.claim_failed', clientId: client.id, err: err.message }, 'could not register the session in Redis')
          cb(Object.assign(new ThingmeshError('BROKER_REDIS_UNAVAILABLE'), { returnCode: 3 }), false)
        })
      }
      if (existing && existing !== client && !existing.closed) {
        stateOf(existing).takenOver = true
        existing._disconnected = true
        metrics.takeovers.inc()
        existing.close(claimed)
      } else {
        claimed()
      }
    },

    authorizePublish (client: AedesClient | null, packet: { topic: string }, cb: (err?: Error | null) => void): void {
      if (client === null) { cb(null); return }
      const problem = topicProblem(packet.topic)
      if (problem) { refuse(client, 'invalid_topic', { topic: packet.topic }); cb(new ThingmeshError('BROKER_INVALID_FILTER', problem)); return }
      if (isReserved(packet.topic)) { refuse(client, 'reserved_topic', { topic: packet.topic }); cb(new ThingmeshError('BROKER_TOPIC_RESERVED')); return }
      cb(null)
    },

    authorizeSubscribe (client: AedesClient, sub: { topic: string, qos: number }, cb: (err: Error | null, sub?: unknown) => void): void {
      if (!maySubscribe(sub.topic)) {
        refuse(client, filterProblem(sub.topic) ? 'invalid_filter' : 'reserved_topic', { filter: sub.topic })
        cb(null, null) // SUBACK 0x80 for this filter; the others proceed
        return
      }
      cb(null, sub)
    },

    /** Per delivery: drop repeats from overlapping filters; downgrade QoS to the granted one. */
    authorizeForward (client: AedesClient, packet: { topic: string, qos: number, brokerId?: string | null, brokerCounter?: number, payload: Buffer }): unknown {
      const subs = client.subscriptions
      let granted = -1
      let n = 0
      for (const filter in subs) {
        if (matches(filter, packet.topic)) { n++; if (subs[filter].qos > granted) granted = subs[filter].qos }
      }
      // Repeats come from overlapping filters, and for persistent sessions from
      // a queue replay racing live delivery (see persistence deliveredLive).
      if ((n > 1 || !client.clean) && packet.brokerId && !firstDelivery(stateOf(client), `${packet.brokerId}:${packet.brokerCounter}`)) return null
      metrics.messagesOut.inc()
      metrics.bytesOut.inc(packet.payload.length)
      // [MQTT-3.8.4-6] [MQTT-3.3.5-1] delivered at the lower of published and granted QoS.
      if (granted >= 0 && packet.qos > granted) return { ...packet, qos: granted }
      return packet
    },

    published (packet: { topic: string, qos: number, messageId?: number, payload: Buffer }, client: (AedesClient & { conn: import('node:stream').Duplex }) | null, cb: (err?: Error | null) => void): void {
      if (client) {
        metrics.messagesIn.inc({ qos: String(packet.qos) })
        metrics.bytesIn.inc(packet.payload.length)
        if (ctx.ingest) {
          ctx.ingest(packet, client).then(() => {
            if (packet.qos === 1 && packet.messageId !== undefined) releasePuback(client, packet.messageId)
            cb(null)
          }, (err: Error) => {
            log.warn({ event: 'engine.ingest_failed', clientId: client.id, topic: packet.topic.slice(0, 256), err: err.message }, 'publish not made durable; no PUBACK')
            cb(err)
          })
          return
        }
        if (packet.qos === 1 && packet.messageId !== undefined) releasePuback(client, packet.messageId)
      }
      cb(null)
    },
  }
}

/** The one subscription predicate: used for SUBACK and again before storing. */
export function maySubscribe (filter: string): boolean {
  return filterProblem(filter) === null && !isReserved(filter)
}
