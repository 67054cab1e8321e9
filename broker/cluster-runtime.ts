import type { Redis } from 'ioredis'
import type { NodeConfig } from './config.ts'
import type { Logger } from './log.ts'
import type { Metrics } from './metrics.ts'
import { connectRedis, defineScripts, linkStalled } from './cluster/redis.ts'
import { createKeys, type Keys } from './cluster/keys.ts'
import { ClusterBus } from './cluster/bus.ts'
import { BUS_MARKER_VERSION, decodeMarker } from './cluster/codec.ts'
import type { ClusterLinks, LinkAddress } from './cluster/links/index.ts'
import { startNodeLinks } from './cluster/links/wiring.ts'
import { BusCatchUp } from './cluster/bus-log.ts'
import { InterestTable, type InterestChange } from './cluster/interest.ts'
import { Membership, type Member } from './cluster/membership.ts'
import { SessionRegistry, type ReleasedNotice, type TakeoverNotice } from './cluster/sessions.ts'
import { RedisPersistence } from './persistence/redis-persistence.ts'
import type { SubscriptionChange } from './persistence/subscription-index.ts'
import { maySubscribe, type AedesClient, type SessionHooks } from './mqtt/hooks.ts'
import { stateOf } from './mqtt/client-state.ts'
import { INITIAL_STATE, LoadSampler, loadOf, recommend, type Recommendation, type ScalingState, type ScalingThresholds } from './scaling.ts'
import { SYS_TOPICS } from './sys-topics.ts'

/** What the cluster runtime needs from the MQTT side, without knowing aedes. */
export interface BrokerPort {
  localClient(id: string): AedesClient | undefined
  localClients(): AedesClient[]
  publish(packet: object): Promise<void>
  load(): Record<string, number>
}

/**
 * Glue between the MQTT engine and the cluster mechanisms in cluster/:
 * Redis connections, the bus, persistence, membership, session takeover and
 * publishing the wills of dead nodes.
 */
export class ClusterRuntime {
  readonly keys: Keys
  readonly cmd: Redis
  readonly sub: Redis
  readonly bus: ClusterBus
  readonly interest: InterestTable
  readonly persistence: RedisPersistence
  readonly sessions: SessionRegistry
  /** Orders bus traffic around pub/sub cuts, replaying what the link missed. */
  private readonly catchUp: BusCatchUp
  membership!: Membership
  /** Direct node-to-node links for QoS 0 and QoS 1 bus traffic (null with --cluster-links false). */
  private links: ClusterLinks | null = null
  /** Where the other nodes reach our link listener (in our membership record). */
  private linkAddress: LinkAddress | undefined
  /** Publishes received from other nodes, by transport (thingmesh_bus_transport_messages_total). */
  private linkReceived = { count: 0 }
  private redisReceived = 0
  private port: BrokerPort | null = null
  /** Set by the node: a `drain` control message names this node. */
  onDrain: ((spreadMs?: number) => void) | null = null
  /** Set by the node: this incarnation was declared dead; fence() has already cut its Redis links. The node drops its clients. */
  onFenced: (() => void) | null = null
  private fenced = false
  private readonly busChannel: string
  private subReady = false
  private subEverReady = false
  private reaping = false
  private reapTimer: NodeJS.Timeout | null = null
  private expiryTimer: NodeJS.Timeout | null = null
  private sampler: LoadSampler | null = null
  private sampleTimer: NodeJS.Timeout | null = null
  private scalingState: ScalingState = INITIAL_STATE
  /** The latest scaling advice [issue 7], recomputed after every heartbeat from all members' loads. */
  scaling: Recommendation | null = null
  /** Connections holding a claim on this node, by client id (the epoch is the client's stateOf().epoch). */
  private readonly claimed = new Map<string, AedesClient>()
  /** Connections whose claim was released (the close is reported twice: by the socket and by aedes). */
  private readonly released = new WeakSet<AedesClient>()
  /**
   * Takeover notices from other nodes, kept a few seconds: a notice can
   * overtake the reply to our own claim (they travel on different
   * connections), and the higher epoch must still win.
   */
  private readonly foreignClaims = new Map<string, { epoch: number, at: number }>()
  /**
   * Connections with a claim that aedes has not registered yet. aedes reports
   * a close only for registered clients: one that goes away during CONNECT
   * (takeover wait, will store) would keep its claim, so these are looked at
   * on every heartbeat until registered (node.ts: clientRegistered). A
   * 'close' listener per connection did the same, but grew every socket's
   * listener array for good (issue 8: ~0.15 KB per idle connection; before,
   * a closure and a once-wrapper, ~0.25 KB more).
   */
  private readonly connecting = new Set<AedesClient>()

  constructor (
    private readonly config: NodeConfig,
    readonly brokerId: string,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {
    const url = config.redis!
    this.keys = createKeys(config.cluster)
    this.busChannel = this.keys.busOf(brokerId)
    this.cmd = connectRedis({
      url, name: `thingmesh:${config.nodeId}:cmd`, commandTimeoutMs: config.redisCommandTimeoutMs, log,
      // The bus batches per turn and target itself (cluster/bus.ts), the session claims per turn (cluster/claim-batch.ts).
      direct: ['busPublish', 'publish', 'claimSessions'],
      onUp: () => metrics.redisUp.set(1),
      onDown: () => metrics.redisUp.set(0),
    })
    this.sub = connectRedis({
      url, name: `thingmesh:${config.nodeId}:sub`, commandTimeoutMs: config.redisCommandTimeoutMs, log, subscriber: true,
      onUp: () => this.onSubUp(), onDown: () => { this.subReady = false; this.catchUp.linkLost() },
    })
    defineScripts(this.cmd, new URL('./cluster/lua/', import.meta.url))
    this.interest = new InterestTable(brokerId, {
      snapshot: async (b) => {
        const [seq, filters] = await (this.cmd as unknown as { interestSnapshot(...a: string[]): Promise<[number, string[]]> })
          .interestSnapshot(this.keys.interestOf(b), this.keys.interestSeqOf(b))
        return { seq: Number(seq), filters }
      },
    }, (err) => log.debug({ event: 'interest.resync_failed', err: err.message }))
    this.bus = new ClusterBus(brokerId, {
      publish: (b, batch, durability, frames) => this.links ? this.links.router.publish(b, batch, durability, frames) : this.publishFrame(b, batch, durability > 0),
      announce: (op, filters) => (this.cmd as unknown as { changeInterest(...a: string[]): Promise<number> })
        .changeInterest(this.keys.interestOf(brokerId), this.keys.interestSeqOf(brokerId), this.keys.gone, brokerId, this.keys.controlChannel, op, ...filters),
      replicated: config.redisWaitReplicas > 0
        ? async () => {
          const acked = Number(await this.cmd.call('WAIT', config.redisWaitReplicas, config.redisWaitTimeoutMs))
          if (acked < config.redisWaitReplicas) {
            metrics.replicationShortfalls.inc()
            throw new Error(`only ${acked} of ${config.redisWaitReplicas} Redis replicas confirmed in ${config.redisWaitTimeoutMs} ms; publish not acknowledged`)
          }
        }
        : undefined,
    }, this.interest, 1000, (what, err) => log.warn({ event: 'bus.' + what + '_failed', err: err.message }, 'interest change not recorded'))
    this.persistence = new RedisPersistence({
      redis: this.cmd,
      keys: this.keys,
      maxQueuedMessages: config.maxQueuedMessages,
      mayStore: (_clientId, sub) => maySubscribe(sub.topic),
      deliveredLive: (client, key) => stateOf(client).recent?.has(key) ?? false,
      onDropped: (_clientId, n) => { metrics.queueDropped.inc(n) },
      onDropReport: (clientId, n) => { log.warn({ event: 'queue.dropped', clientId, count: n, code: 'BROKER_QUEUE_FULL' }, 'offline queue full; oldest messages dropped') },
      onIndexStale: () => metrics.indexResyncs.inc(),
      onReadFailed: (what, err) => log.warn({ event: 'persistence.read_failed', what, err: err.message }, 'a read from Redis failed'),
      onWriteFailed: (what, clientId, err) => log.warn({ event: 'persistence.write_failed', what, clientId, err: err.message, code: 'BROKER_REDIS_UNAVAILABLE' }, 'a write to Redis failed and was given up'),
    })
    this.sessions = new SessionRegistry(this.cmd, this.keys, brokerId)
    this.catchUp = new BusCatchUp({
      range: async (afterId, count) => {
        const entries = await this.cmd.xrangeBuffer(this.keys.busLogOf(brokerId), `(${afterId}`, '+', 'COUNT', count)
        return entries.map(([id, fields]) => [id.toString(), fields[1]!] as [string, Buffer])
      },
    }, (batch) => this.receiveFromRedis(batch), (err) => log.warn({ event: 'bus.replay_failed', err: err.message }, 'could not read the bus replay log; retrying'))
    this.sub.on('messageBuffer', (channel: Buffer, message: Buffer) => this.onMessage(channel.toString(), message))
    metrics.setBusTransportSource(() => {
      const s = this.links?.stats
      return {
        linkSent: s?.linkFrames ?? 0,
        linkReceived: this.linkReceived.count,
        redisSent: s ? s.redisFrames : this.bus.stats.sent,
        redisReceived: this.redisReceived,
        linksUp: s?.linksUp ?? 0,
        markerTimeouts: s?.markerTimeouts ?? 0,
        linkAcked: s?.linkAcked ?? 0,
        linkResent: s?.resent ?? 0,
      }
    })
  }

  /** A batch (or a link marker) from our bus channel, in order, after the replay log's checks. */
  private receiveFromRedis (message: Buffer): void {
    if (message[0] === BUS_MARKER_VERSION) {
      const m = decodeMarker(message)
      if (m) this.links?.markerSeen(m.origin, m.token)
      else this.bus.stats.malformed++
      return
    }
    const n = this.bus.receive(message)
    if (n > 0) this.redisReceived += n
  }

  /** Resolves when both Redis links are up and subscribed. */
  async connect (): Promise<void> {
    await Promise.all([waitReady(this.cmd), waitReady(this.sub)])
    await this.sub.subscribe(this.keys.busOf(this.brokerId), this.keys.controlChannel)
    this.subReady = true
    this.subEverReady = true
    if (this.config.clusterLinks) await this.startLinks()
  }

  /** The direct links to the other nodes (cluster/links/wiring.ts). */
  private async startLinks (): Promise<void> {
    const c = this.config
    const started = await startNodeLinks({
      brokerId: this.brokerId, clusterSecret: c.clusterSecret, host: c.linkHost, port: c.linkPort, advertise: c.linkAdvertise,
      redisCommandTimeoutMs: c.redisCommandTimeoutMs, redisWaitReplicas: c.redisWaitReplicas,
      cmd: this.cmd, keys: this.keys, bus: this.bus, log: this.log,
      redisPublish: (b, batch, durable) => this.publishFrame(b, batch, durable),
      onEvent: (event) => this.metrics.linkEvents.inc({ event }),
    })
    this.links = started.links
    this.linkReceived = started.received
    this.linkAddress = started.address
  }

  attach (port: BrokerPort, self: { host: string, port: number, httpPort: number }): void {
    this.port = port
    const counterTotal = async (c: { get(): Promise<{ values: Array<{ value: number }> }> }): Promise<number> =>
      (await c.get()).values.reduce((sum, v) => sum + v.value, 0)
    const sampler = new LoadSampler(async () => ({ in: await counterTotal(this.metrics.messagesIn), out: await counterTotal(this.metrics.messagesOut) }))
    this.sampler = sampler
    this.membership = new Membership({
      redis: this.cmd,
      keys: this.keys,
      log: this.log,
      self: { nodeId: this.config.nodeId, brokerId: this.brokerId, startedAt: Date.now(), ...self, ...(this.linkAddress ? { link: this.linkAddress } : {}) },
      heartbeatMs: this.config.heartbeatMs,
      deadAfterMs: this.config.deadAfterMs,
      load: () => ({ ...port.load(), ...sampler.current() }),
    })
    this.membership.on('members', (members: Member[]) => {
      this.metrics.clusterSize.set(members.length)
      this.adviseScaling(members)
      this.interest.setMembers(members.map((m) => m.brokerId))
      this.interest.retryUnknown()
      this.links?.setPeers(members)
    })
    this.membership.on('dead', (brokerIds: string[]) => {
      void this.reapDead()
      for (const b of brokerIds) this.cmd.del(this.keys.interestOf(b), this.keys.interestSeqOf(b)).catch(() => {})
    })
    this.membership.on('fenced', () => { this.fence() })
    this.membership.on('beatFailed', () => this.metrics.redisUp.set(0))
  }

  /**
   * The cluster declared this incarnation dead: the survivors publish its
   * clients' wills (or did) and deleted its interest set. From here it writes
   * nothing more in its name: both Redis links are cut first (queued and new
   * commands fail), so closing the clients afterwards cannot delete a will a
   * survivor has not published yet (aedes' delWill on a will-less close),
   * re-create the interest set, or release a session someone else may hold.
   * Then the node tears itself down (and may come back as a new incarnation).
   */
  private fence (): void {
    if (this.fenced) return
    this.fenced = true
    this.links?.close()
    this.catchUp.close()
    this.persistence.close()
    this.stopTimers()
    this.cmd.disconnect()
    this.sub.disconnect()
    this.subReady = false
    // The node drops its clients (without wills) and tears down (node.ts).
    this.onFenced?.()
  }

  async start (): Promise<void> {
    const started = process.hrtime.bigint()
    // Sampled on the heartbeat, so each membership record carries the figures of one interval.
    this.sampleTimer = setInterval(() => { this.sampler?.sample().catch(() => {}) }, this.config.heartbeatMs)
    this.sampleTimer.unref()
    await this.membership.start()
    this.metrics.redisRtt.observe(Number(process.hrtime.bigint() - started) / 1e9)
    // A reaper may die half way through a dead node's wills; every node
    // finishes such leftovers on its own heartbeat.
    this.reapTimer = setInterval(() => { void this.reapDead(); this.trimBusLog(); this.sweepConnecting() }, this.config.heartbeatMs)
    this.reapTimer.unref()
    if (this.config.sessionExpirySec > 0) {
      this.expiryTimer = setInterval(() => { void this.expireSessions() }, Math.max(this.config.heartbeatMs, 1000))
      this.expiryTimer.unref()
    }
  }

  /** The session hooks the MQTT side calls on CONNECT. */
  sessionHooks (): SessionHooks {
    return {
      claim: async (client) => {
        const claim = await this.sessions.claim(client.id, !client.clean)
        const state = stateOf(client)
        state.epoch = claim.epoch
        this.connecting.add(client)
        if (client.closed || client.conn.destroyed) {
          this.clientClosed(client)
          throw new Error('connection closed during CONNECT')
        }
        const foreign = this.foreignClaims.get(client.id)
        if (foreign && foreign.epoch > claim.epoch) {
          // A newer connection elsewhere already won the race.
          this.takeOver(client, 'lost a simultaneous connect')
          throw new Error('superseded by a newer connection')
        }
        this.claimed.set(client.id, client)
        this.persistence.claimedAtConnect(client, claim.subsVersion)
        state.sessionPresent = !client.clean && claim.previous !== null && claim.previous.persistent
        const prev = claim.previous
        if (!client.clean && prev && !prev.released && prev.brokerId !== this.brokerId && this.membership.isAlive(prev.brokerId)) {
          // A holder that missed one and a half heartbeats is dead or cut off: it will not release.
          const how = await this.sessions.waitReleased(client.id, prev.epoch, this.config.takeoverWaitMs, { brokerId: prev.brokerId, staleAfterMs: 1.5 * this.config.heartbeatMs })
          if (how === 'timeout') this.log.warn({ event: 'session.takeover_timeout', clientId: client.id, previous: prev.brokerId }, 'previous node did not release the session in time; continuing')
          else if (how === 'holder-dead') this.log.info({ event: 'session.takeover_from_dead', clientId: client.id, previous: prev.brokerId }, 'previous node stopped beating; taking the session over at once')
          if (client.closed || client.conn.destroyed) {
            this.clientClosed(client)
            throw new Error('connection closed during CONNECT')
          }
        }
      },
    }
  }

  /** aedes registered the client: from here its close is reported by aedes. */
  clientRegistered (client: AedesClient): void {
    this.connecting.delete(client)
  }

  /** A local connection ended (any reason): release the client id once its writes are in Redis. */
  clientClosed (client: AedesClient): void {
    this.connecting.delete(client)
    const { epoch } = stateOf(client)
    if (epoch === 0 || this.fenced || this.released.has(client)) return
    this.released.add(client)
    this.persistence.connectionClosed(client)
    if (!client.clean && !stateOf(client).takenOver) {
      this.persistence.sessionSeen(client.id, false).catch(() => { /* expiry bookkeeping only */ })
    }
    if (this.claimed.get(client.id) === client) this.claimed.delete(client.id)
    this.sessions.release(client.id, epoch, !client.clean).catch((err: Error) => {
      this.log.warn({ event: 'session.release_failed', clientId: client.id, err: err.message }, 'could not release session')
    })
  }

  health (): Record<string, unknown> & { ok: boolean } {
    const beatAge = Date.now() - (this.membership?.lastBeatOk ?? 0)
    const redisOk = this.cmd.status === 'ready' && !linkStalled(this.cmd) && beatAge < this.config.deadAfterMs
    const indexOk = !this.persistence.index.stale
    return {
      ok: !this.fenced && redisOk && this.subReady && !linkStalled(this.sub) && indexOk,
      ...(this.fenced ? { fenced: true } : {}),
      redis: redisOk ? 'up' : 'down',
      pubsub: this.subReady ? 'up' : 'down',
      subscriptionIndex: indexOk ? 'current' : 'resyncing',
      indexVersion: this.persistence.index.version,
      members: this.membership?.members.map((m) => ({ nodeId: m.nodeId, brokerId: m.brokerId, host: m.host, port: m.port })) ?? [],
      ...(this.links ? { links: this.links.state() } : {}),
    }
  }

  async stop (): Promise<void> {
    this.catchUp.close()
    this.persistence.close()
    this.stopTimers()
    await this.membership?.stop()
    this.links?.close()
    if (!this.fenced) await Promise.allSettled([this.sub.quit(), this.cmd.quit()])
  }

  /** Claims of connections that closed before aedes registered them are released (see `connecting`). */
  private sweepConnecting (): void {
    for (const c of this.connecting) if (c.closed || c.conn.destroyed) this.clientClosed(c)
  }

  private stopTimers (): void {
    if (this.reapTimer) clearInterval(this.reapTimer)
    if (this.expiryTimer) clearInterval(this.expiryTimer)
    if (this.sampleTimer) clearInterval(this.sampleTimer)
    this.reapTimer = this.expiryTimer = this.sampleTimer = null
    this.sampler?.stop()
  }

  /** Scaling advice from every member's published load: kept for /metrics and published on $SYS (local only). */
  private adviseScaling (members: Member[]): void {
    const c = this.config
    const thresholds: ScalingThresholds = {
      scaleOutConnectionsPerNode: c.scaleOutConnectionsPerNode,
      scaleOutCpuPercent: c.scaleOutCpu,
      scaleOutEventLoopP99Ms: c.scaleOutEventLoopP99Ms,
      scaleInConnectionsPerNode: c.scaleInConnectionsPerNode,
      scaleInCpuPercent: c.scaleInCpu,
      scaleInEventLoopP99Ms: c.scaleInEventLoopP99Ms,
      minNodes: c.scaleMinNodes,
      sustain: c.scaleSustain,
    }
    const loads = members.map((m) => loadOf(m.nodeId, m.load ?? {}))
    const { recommendation, state } = recommend(loads, thresholds, this.scalingState)
    this.scalingState = state
    this.scaling = recommendation
    const m = this.metrics
    for (const action of ['scale-out', 'scale-in', 'hold'] as const) m.scalingRecommendation.set({ action }, action === recommendation.action ? 1 : 0)
    // Reset first so members that left do not linger as stale series.
    for (const g of [m.nodeConnections, m.nodeCpu, m.nodeEventLoopP99, m.nodeMessagesIn, m.nodeMessagesOut]) g.reset()
    for (const l of loads) {
      m.nodeConnections.set({ node: l.nodeId }, l.connections)
      m.nodeCpu.set({ node: l.nodeId }, l.cpuPercent)
      m.nodeEventLoopP99.set({ node: l.nodeId }, l.eventLoopP99Ms / 1000)
      m.nodeMessagesIn.set({ node: l.nodeId }, l.messagesInPerSec)
      m.nodeMessagesOut.set({ node: l.nodeId }, l.messagesOutPerSec)
    }
    this.port?.publish({ topic: SYS_TOPICS.scaling, payload: Buffer.from(JSON.stringify(recommendation)), qos: 0, retain: false })
      .catch((err: Error) => this.log.debug({ event: 'sys.publish_failed', err: err.message }, '$SYS publish failed'))
  }

  /**
   * QoS 1/2 batches go to the target's replay log and channel in one script
   * (cluster/bus-log.ts): a target whose pub/sub link is down right now, as
   * after a failover, reads them from the log when it resubscribes, so the
   * publisher is acknowledged without waiting for it. QoS 0 batches are
   * plain PUBLISHes: at most once, as the protocol allows.
   */
  private publishFrame (b: string, batch: Buffer, durable: boolean): Promise<number> {
    if (!durable) return this.cmd.publish(this.keys.busOf(b), batch)
    return (this.cmd as unknown as { busPublish(log: string, channel: string, batch: Buffer, ttlMs: number): Promise<number> })
      .busPublish(this.keys.busLogOf(b), this.keys.busOf(b), batch, this.busLogTtlMs)
  }

  /**
   * How long a node's replay log outlives its last write: a node silent for
   * dead-after is reaped and comes back, if at all, as a new incarnation with
   * a new log; the margin covers a reconnect that lands just before that.
   */
  private get busLogTtlMs (): number { return 2 * this.config.deadAfterMs + 1000 }

  /**
   * After a pub/sub cut: deliver what the replay log holds beyond the last
   * batch delivered, before anything newer. The PING on the pub/sub link
   * returns after ioredis' resubscribe, so every later batch also arrives live.
   */
  private async replayBus (): Promise<void> {
    // If the PING fails the link may be down again (the next reconnect
    // replays) or just slow: read the log anyway rather than hold live
    // batches until a reconnect that may never come.
    await this.sub.ping().catch(() => {})
    const before = this.catchUp.stats.replayed
    await this.catchUp.resume()
    const n = this.catchUp.stats.replayed - before
    if (n > 0) {
      this.metrics.busReplayed.inc(n)
      this.log.info({ event: 'bus.replayed', batches: n }, 'delivered batches the pub/sub link missed, from the replay log')
    }
  }

  /** The log only needs what this node has not delivered yet; trimmed once a heartbeat. */
  private trimBusLog (): void {
    if (!this.subReady || this.fenced) return
    this.cmd.xtrim(this.keys.busLogOf(this.brokerId), 'MINID', this.catchUp.lastDelivered).catch(() => { /* retried next beat */ })
  }

  private onSubUp (): void {
    if (!this.subEverReady) return
    this.metrics.pubsubCuts.inc()
    // A cut long enough to have us declared dead ends in a fence, not a
    // resync: re-announcing would re-create the interest set the reaper
    // deleted, in the name of a dead incarnation. One beat tells.
    void (this.membership?.beat() ?? Promise.resolve()).then(() => { if (!this.fenced) this.resyncAfterCut() })
  }

  private resyncAfterCut (): void {
    // The pub/sub link dropped and came back: anything sent meanwhile is lost
    // to us, so the subscription index may be stale. Rebuild it.
    this.log.warn({ event: 'pubsub.reconnected' }, 'pub/sub link restored; resyncing the subscription index')
    this.subReady = true
    // Redis may have lost our interest set (restart without persistence), and
    // we may have missed other nodes' changes: re-announce and re-read.
    this.bus.reannounce().catch((err: Error) => this.log.warn({ event: 'interest.reannounce_failed', err: err.message }))
    this.interest.resyncAll()
    void this.recheckClaims()
    void this.replayBus().then(() => this.persistence.resync()).then(() => this.redeliverAfterCut())
  }

  /**
   * Takeover notices published while our pub/sub link was down never reached
   * us, and the old connection would stay open beside the new one (R6 during
   * a Redis failover). Ask Redis who holds our clients now.
   */
  private async recheckClaims (): Promise<void> {
    try {
      // Queued behind ioredis' resubscribe on the same link: from its reply
      // on, notices reach us, so a claim this read misses is heard instead.
      await this.sub.ping()
      const held = [...this.claimed]
      const owners = await this.sessions.holders(held.map(([id]) => id))
      held.forEach(([id, client], i) => {
        const o = owners[i]
        if (o && o.epoch > stateOf(client).epoch && !client.closed && this.claimed.get(id) === client) this.takeOver(client, `connected on ${o.brokerId} while pub/sub was down`)
      })
    } catch (err) {
      this.log.warn({ event: 'session.recheck_failed', err: (err as Error).message }, 'could not recheck session holders after a pub/sub cut')
    }
  }

  /**
   * Frames sent while the pub/sub link was down never reached this node. For
   * clean sessions they are lost (pub/sub is at-most-once; counted in
   * thingmesh_pubsub_reconnects_total). Persistent sessions have them in
   * their Redis queue: send each local one what it has not received yet.
   */
  private async redeliverAfterCut (): Promise<void> {
    if (!this.port) return
    let sent = 0
    for (const client of this.port.localClients()) {
      if (client.clean || client.closed) continue
      const deliver = (client as AedesClient & { deliverQoS?: (p: object, cb: () => void) => void }).deliverQoS
      if (!deliver) continue
      try {
        for await (const packet of this.persistence.outgoingStream(client)) {
          if (client.closed) break
          await new Promise<void>((resolve) => deliver(packet as object, resolve))
          sent++
        }
      } catch (err) {
        this.log.warn({ event: 'pubsub.redeliver_failed', clientId: client.id, err: (err as Error).message }, 'could not redeliver queued messages; they stay queued')
      }
    }
    this.log.info({ event: 'pubsub.redelivered', messages: sent }, 'redelivered queued messages missed during the pub/sub cut')
  }

  private onMessage (channel: string, message: Buffer): void {
    if (channel === this.busChannel) { this.catchUp.live(message); return }
    let msg: { v?: number, t?: string }
    try { msg = JSON.parse(message.toString()) } catch { return }
    if (msg.v !== 1) return
    if (msg.t === 'subs') this.persistence.onSubscriptionChange(msg as unknown as SubscriptionChange)
    else if (msg.t === 'interest') this.interest.apply(msg as InterestChange)
    else if (msg.t === 'takeover') this.onTakeover(msg as TakeoverNotice)
    else if (msg.t === 'released') this.sessions.onReleased(msg as ReleasedNotice)
    else if (msg.t === 'drain') {
      const d = msg as { node?: string, spreadMs?: number }
      if (d.node === this.config.nodeId || d.node === this.brokerId) {
        this.log.info({ event: 'cluster.drain_requested', spreadMs: d.spreadMs }, 'drain requested over the control channel')
        this.onDrain?.(typeof d.spreadMs === 'number' ? d.spreadMs : undefined)
      }
    }
  }

  /** [MQTT-3.1.4-2] across nodes: the connection with the lower epoch goes. */
  private onTakeover (n: TakeoverNotice): void {
    if (n.b === this.brokerId) return
    const now = Date.now()
    this.foreignClaims.set(n.c, { epoch: Math.max(n.e, this.foreignClaims.get(n.c)?.epoch ?? 0), at: now })
    if (this.foreignClaims.size > 1000) {
      for (const [id, f] of this.foreignClaims) if (now - f.at > 5000) this.foreignClaims.delete(id)
    }
    const held = this.claimed.get(n.c)
    if (!held || stateOf(held).epoch >= n.e || held.closed) return
    this.takeOver(held, `connected on ${n.b}`)
  }

  private takeOver (client: AedesClient, why: string): void {
    stateOf(client).takenOver = true
    // No will for a client that is connected elsewhere (MQTT 5 semantics).
    client._disconnected = true
    this.metrics.takeovers.inc()
    this.log.info({ event: 'session.taken_over', clientId: client.id, why, code: 'BROKER_SESSION_TAKEN_OVER' }, 'client id connected elsewhere; closing here')
    client.close()
    // Not registered yet, so aedes will not report the close: release now (the winner may wait for it).
    if (this.connecting.has(client)) this.clientClosed(client)
  }

  /** [issue 3 defect 14] sessions of clients that never return do not grow without bound. */
  private async expireSessions (): Promise<void> {
    if (this.cmd.status !== 'ready') return
    try {
      const expired = await this.persistence.expireSessions(this.config.sessionExpirySec)
      if (expired.length > 0) {
        this.metrics.sessionsExpired.inc(expired.length)
        this.log.info({ event: 'session.expired', count: expired.length, clientIds: expired.slice(0, 20) }, 'expired persistent sessions')
      }
    } catch (err) {
      this.log.debug({ event: 'session.expiry_failed', err: (err as Error).message })
    }
  }

  /** Publishes the wills of dead nodes' clients, each exactly once cluster-wide. */
  private async reapDead (): Promise<void> {
    // While Redis is away the outage is already logged; nothing to try.
    if (this.reaping || !this.port || this.cmd.status !== 'ready') return
    this.reaping = true
    try {
      for (const dead of await this.membership.pendingDead()) {
        const clientIds = await this.cmd.smembers(this.keys.willsOf(dead))
        for (const clientId of clientIds) {
          const will = await this.persistence.takeWill(clientId, dead)
          if (!will) continue
          await this.port.publish({ ...will.packet, brokerId: undefined, brokerCounter: undefined, clientId })
          this.metrics.willsPublished.inc()
          this.log.info({ event: 'will.published_for_dead_node', clientId, deadBroker: dead, topic: will.packet.topic }, 'published will of a client of a dead node')
        }
        if ((await this.cmd.scard(this.keys.willsOf(dead))) === 0) await this.membership.forgetDead(dead)
      }
    } catch (err) {
      this.log.warn({ event: 'will.reap_failed', err: (err as Error).message }, 'could not publish dead nodes\' wills yet; will retry')
    } finally {
      this.reaping = false
    }
  }
}

function waitReady (r: Redis): Promise<void> {
  if (r.status === 'ready') return Promise.resolve()
  return new Promise((resolve) => r.once('ready', () => resolve()))
}
