import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { ThingmeshError } from '../errors.ts'
import { filterProblem, isReserved, matches, topicProblem } from './topics.ts'
import { firstDelivery, stateOf } from './client-state.ts'
import { releasePuback } from './wire-patches.ts'
import { AuthRefusal, mayPublish, mayReceive, maySubscribeAcl, principalOf, setPrincipal, TokenBucket, type Authenticator, type Principal } from '../auth/index.ts'
import type { ConnInfo } from '../listeners/index.ts'

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
  auth: Authenticator
  /** Transport facts (remote address, client certificate) of a connection. */
  connInfo(conn: object): ConnInfo | undefined
  limits: { maxSubscriptionsPerClient: number, publishRatePerClient: number, keepaliveLimit: number }
  sessions: SessionHooks | null
  /** Standalone node only: client ids with a persistent session (admin sessions/delete forgets one). */
  localSessions?: Set<string>
  localClient(id: string): AedesClient | undefined
  /**
   * Makes a client publish durable where it must be (the thing engine's
   * partition log) before its PUBACK is released; a rejection withholds the
   * PUBACK, so the client resends. Undefined: nothing to make durable (not
   * an engine topic), the PUBACK goes at once, without a promise turn.
   */
  ingest?: (packet: { topic: string, qos: number, payload: Buffer }, client: AedesClient) => Promise<void> | undefined
}

type Cb<T = void> = (err: Error | null, result?: T) => void

/** Filters granted to a client that aedes may not have added yet, and the count of those it holds (valid until the next microtask). */
interface Granting { pending: Map<string, number>, held: number, fresh: boolean }

const REFUSALS_LOGGED = 10
const REFUSAL_WINDOW_MS = 10_000

/**
 * The aedes hooks: where thingmesh's policy meets the protocol engine.
 */
export function createHooks (ctx: HooksContext) {
  const { log, metrics } = ctx
  /** Standalone node only: client ids with a persistent session, for CONNACK session-present. */
  const localSessions = ctx.localSessions ?? new Set<string>()
  /** Per client: publish token bucket, and filters granted but maybe not yet in client.subscriptions. */
  const buckets = new WeakMap<object, TokenBucket>()
  const granting = new WeakMap<object, Granting>()
  const publishRate = ctx.limits.publishRatePerClient
  const maxSubs = ctx.limits.maxSubscriptionsPerClient

  /**
   * Counts the client's filters, including grants aedes has not added yet (a
   * SUBSCRIBE is authorized filter by filter, in parallel). The filters
   * aedes holds are counted once per SUBSCRIBE (the count is kept until the
   * next microtask), not once per filter: a client sending 100,000 filters
   * past the cap of 1,000 made 99,000 arrays of 1,000 keys, 1.5 GB
   * allocated in a few seconds (chaos S6).
   */
  function subscriptionCount (client: AedesClient, filter: string): number {
    let g = granting.get(client)
    if (g === undefined) { g = { pending: new Map(), held: 0, fresh: false }; granting.set(client, g) }
    if (!g.fresh) {
      const now = Date.now()
      for (const f of [...g.pending.keys()]) if (f in client.subscriptions || now - g.pending.get(f)! > 5000) g.pending.delete(f)
      g.held = Object.keys(client.subscriptions).length
      g.fresh = true
      const stale = g
      queueMicrotask(() => { stale.fresh = false })
    }
    if (filter in client.subscriptions || g.pending.has(filter)) return -1 // a replacement, not a new filter
    return g.held + g.pending.size
  }

  /** Per client: refusals logged and not logged in the current window. */
  const refusalLog = new WeakMap<object, { since: number, logged: number, unlogged: number }>()

  /**
   * Every refusal is counted; a client's refusals are logged up to
   * REFUSALS_LOGGED per REFUSAL_WINDOW_MS. One SUBSCRIBE of 100,000 filters
   * was 99,000 log lines, and the log work was most of the node's memory
   * growth under that attack (chaos S6). The first line of the next window
   * says how many were left out.
   */
  function refuse (client: AedesClient | null, reason: string, detail: Record<string, unknown>): void {
    metrics.rejected.inc({ reason })
    let extra: Record<string, unknown> | null = null
    if (client !== null) {
      const now = Date.now()
      let w = refusalLog.get(client)
      if (w === undefined || now - w.since >= REFUSAL_WINDOW_MS) {
        if (w !== undefined && w.unlogged > 0) extra = { notLoggedBefore: w.unlogged }
        w = { since: now, logged: 0, unlogged: 0 }
        refusalLog.set(client, w)
      }
      if (w.logged >= REFUSALS_LOGGED) { w.unlogged++; return }
      if (++w.logged === REFUSALS_LOGGED) extra = { ...extra, moreNotLoggedForMs: REFUSAL_WINDOW_MS - (now - w.since) }
    }
    log.info({ event: 'client.refused', reason, clientId: client?.id, ...detail, ...extra }, 'client refused')
  }

  const keepaliveCap = ctx.limits.keepaliveLimit

  const hooks = {
    /**
     * The keepalive cap [S7]. aedes would refuse a larger keepalive with
     * CONNACK 0x06, a code MQTT 3.1.1 does not define, and the client has no
     * way to learn the limit. A 3.1.1 client is accepted instead and held to
     * the cap: silent for 1.5 × cap, it is closed [MQTT-3.1.2-24]. Keepalive
     * 0 (none) is capped too, or a silent socket would be held forever.
     */
    preConnect (_client: AedesClient, packet: { keepalive?: number }, cb: (err: Error | null, ok: boolean) => void): void {
      if (keepaliveCap > 0 && (!packet.keepalive || packet.keepalive > keepaliveCap)) packet.keepalive = keepaliveCap
      cb(null, true)
    },

    authenticate (client: AedesClient, username: string | undefined, password: Buffer | undefined, cb: (err: (Error & { returnCode?: number }) | null, ok?: boolean) => void): void {
      const info = ctx.connInfo(client.conn)
      ctx.auth.authenticate({ clientId: client.id, username, password, address: info?.address ?? '', certName: info?.certName, stillWanted: () => !client.closed && !client.conn.destroyed }).then((principal) => {
        if (client.closed) { cb(new Error('connection closed during authentication'), false); return }
        setPrincipal(client, principal)
        admitted(client, cb)
      }, (err: Error) => {
        if (err instanceof AuthRefusal) { cb(Object.assign(err, { returnCode: err.returnCode }), false); return }
        log.warn({ event: 'auth.failed', clientId: client.id, err: err.message }, 'authentication failed unexpectedly')
        cb(Object.assign(new ThingmeshError('BROKER_REDIS_UNAVAILABLE'), { returnCode: 3 }), false)
      })
    },

    authorizePublish (client: AedesClient | null, packet: { topic: string }, cb: (err?: Error | null) => void): void {
      if (client === null) { cb(null); return }
      const principal = principalOf(client)
      if (!principal) { cb(new ThingmeshError('BROKER_NOT_AUTHORIZED')); return }
      if (publishRate > 0) {
        let bucket = buckets.get(client)
        if (!bucket) { bucket = new TokenBucket(publishRate, 2 * publishRate); buckets.set(client, bucket) }
        if (!bucket.take()) { refuse(client, 'publish_rate', { code: 'BROKER_LIMIT_PUBLISH_RATE' }); cb(new ThingmeshError('BROKER_LIMIT_PUBLISH_RATE')); return }
      }
      const problem = topicProblem(packet.topic)
      if (problem) { refuse(client, 'invalid_topic', { topic: packet.topic }); cb(new ThingmeshError('BROKER_INVALID_FILTER', problem)); return }
      if (!mayPublish(principal, packet.topic)) {
        const reserved = packet.topic.startsWith('$')
        refuse(client, reserved ? 'reserved_topic' : 'acl_denied', { topic: packet.topic.slice(0, 256), username: principal.username })
        cb(new ThingmeshError(reserved ? 'BROKER_TOPIC_RESERVED' : 'AUTH_ACL_DENIED'))
        return
      }
      cb(null)
    },

    authorizeSubscribe (client: AedesClient, sub: { topic: string, qos: number }, cb: (err: Error | null, sub?: unknown) => void): void {
      const principal = principalOf(client)
      const filter = sub.topic
      if (!principal || filterProblem(filter) !== null || !maySubscribeAcl(principal, filter)) {
        const reason = filterProblem(filter) ? 'invalid_filter' : filter.startsWith('$') ? 'reserved_topic' : 'acl_denied'
        refuse(client, reason, { filter: filter.slice(0, 256), username: principal?.username })
        cb(null, null) // SUBACK 0x80 for this filter; the others proceed
        return
      }
      if (maxSubs > 0) {
        const n = subscriptionCount(client, filter)
        if (n >= maxSubs) {
          refuse(client, 'too_many_subscriptions', { filter: filter.slice(0, 256), code: 'BROKER_LIMIT_SUBSCRIPTIONS' })
          cb(null, null)
          return
        }
        if (n >= 0) granting.get(client)!.pending.set(filter, Date.now())
      }
      cb(null, sub)
    },

    /** Per delivery (live and queue replay): the ACL again, then drop repeats; downgrade QoS to the granted one. */
    authorizeForward (client: AedesClient, packet: { topic: string, qos: number, brokerId?: string | null, brokerCounter?: number, payload: Buffer }): unknown {
      const principal = principalOf(client)
      if (!principal || !mayReceive(principal, packet.topic)) return null
      return forward(client, packet)
    },

    published (packet: { topic: string, qos: number, messageId?: number, payload: Buffer }, client: (AedesClient & { conn: import('node:stream').Duplex }) | null, cb: (err?: Error | null) => void): void {
      if (client) {
        metrics.countIn(packet.qos, packet.payload.length)
        const durable = ctx.ingest?.(packet, client)
        if (durable !== undefined) {
          durable.then(() => {
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

  /** After authentication: session takeover on this node and the cluster-wide claim. */
  function admitted (client: AedesClient, cb: (err: (Error & { returnCode?: number }) | null, ok?: boolean) => void): void {
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
  }

  /** Drops repeats from overlapping filters; downgrades QoS to the granted one. */
  function forward (client: AedesClient, packet: { topic: string, qos: number, brokerId?: string | null, brokerCounter?: number, payload: Buffer }): unknown {
    const subs = client.subscriptions
    let granted = -1
    let n = 0
    for (const filter in subs) {
      // A filter without wildcards matches only its own topic: skip the split.
      if (filter === packet.topic || matches(filter, packet.topic)) { n++; if (subs[filter].qos > granted) granted = subs[filter].qos }
    }
    // Repeats come from overlapping filters, and for persistent sessions from
    // a queue replay racing live delivery (see persistence deliveredLive).
    if ((n > 1 || !client.clean) && packet.brokerId && !firstDelivery(stateOf(client), `${packet.brokerId}:${packet.brokerCounter}`)) return null
    metrics.countOut(packet.payload.length)
    // [MQTT-3.8.4-6] [MQTT-3.3.5-1] delivered at the lower of published and granted QoS.
    if (granted >= 0 && packet.qos > granted) return { ...packet, qos: granted }
    return packet
  }

  return hooks
}

/** The one subscription predicate: used for SUBACK and again before storing. */
export function maySubscribe (filter: string): boolean {
  return filterProblem(filter) === null && !isReserved(filter)
}
