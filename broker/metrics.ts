import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * The node's Prometheus metrics (prom-client: the standard Node exporter,
 * with process and event-loop metrics for free). Names follow Prometheus
 * conventions; every counter's reason label has a fixed set of values.
 */
const QOS_LABELS = ['0', '1', '2']

export function createMetrics () {
  const registry = new Registry()
  /**
   * Deliveries (and publishes received) counted in plain numbers and added to the two counters when
   * they are read (scrape, LoadSampler): two prom-client inc() calls per
   * delivery (label hashing, value map) were 1.5-3.5% of a node's CPU in
   * fan-out (issue 8). collect() runs before every get(), so a read is exact.
   */
  const out = { messages: 0, bytes: 0 }
  /** The same for publishes received (one per PUBLISH, by QoS). */
  const inc = { messages: [0, 0, 0], bytes: 0 }
  /** Bus publishes per transport, read from the cluster runtime at every scrape. */
  let transports: (() => BusTransportCounts) | null = null
  collectDefaultMetrics({ register: registry, prefix: 'thingmesh_process_' })
  const m = {
    registry,
    connections: new Gauge({ name: 'thingmesh_connections', help: 'MQTT clients connected to this node', registers: [registry] }),
    subscriptions: new Gauge({ name: 'thingmesh_subscriptions', help: 'subscriptions of clients connected to this node', registers: [registry] }),
    persistentSubscriptions: new Gauge({ name: 'thingmesh_persistent_subscriptions', help: 'QoS>0 subscriptions of persistent sessions, cluster-wide', registers: [registry] }),
    retained: new Gauge({ name: 'thingmesh_retained_messages', help: 'retained messages stored', registers: [registry] }),
    clusterSize: new Gauge({ name: 'thingmesh_cluster_nodes', help: 'live nodes in the cluster (1 when standalone)', registers: [registry] }),
    redisUp: new Gauge({ name: 'thingmesh_redis_up', help: '1 when this node reaches Redis', registers: [registry] }),
    redisRtt: new Histogram({ name: 'thingmesh_redis_rtt_seconds', help: 'heartbeat round trip to Redis', buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2], registers: [registry] }),
    messagesIn: new Counter({ name: 'thingmesh_messages_in_total', help: 'PUBLISH packets received from clients', labelNames: ['qos'], registers: [registry], collect () { for (let q = 0; q < 3; q++) if (inc.messages[q] > 0) { this.inc({ qos: QOS_LABELS[q] }, inc.messages[q]); inc.messages[q] = 0 } } }),
    bytesIn: new Counter({ name: 'thingmesh_bytes_in_total', help: 'payload bytes received from clients', registers: [registry], collect () { if (inc.bytes > 0) { this.inc(inc.bytes); inc.bytes = 0 } } }),
    /** One PUBLISH of QoS `qos` (0-2) and `bytes` payload bytes received from a client (messagesIn, bytesIn at the next read). */
    countIn (qos: number, bytes: number): void { inc.messages[qos]++; inc.bytes += bytes },
    messagesOut: new Counter({ name: 'thingmesh_messages_out_total', help: 'PUBLISH packets forwarded to clients', registers: [registry], collect () { if (out.messages > 0) { this.inc(out.messages); out.messages = 0 } } }),
    bytesOut: new Counter({ name: 'thingmesh_bytes_out_total', help: 'payload bytes forwarded to clients', registers: [registry], collect () { if (out.bytes > 0) { this.inc(out.bytes); out.bytes = 0 } } }),
    /** One PUBLISH of `bytes` payload bytes forwarded to a client (messagesOut, bytesOut at the next read). */
    countOut (bytes: number): void { out.messages++; out.bytes += bytes },
    busSent: new Gauge({ name: 'thingmesh_bus_sent_total', help: 'publishes forwarded to other nodes', registers: [registry] }),
    busReceived: new Gauge({ name: 'thingmesh_bus_received_total', help: 'publishes received from other nodes', registers: [registry] }),
    busTransport: new Gauge({
      name: 'thingmesh_bus_transport_messages_total', help: 'publishes forwarded to (sent) or received from (received) other nodes, by transport: link (direct node-to-node link) or redis (pub/sub and replay log)', labelNames: ['transport', 'direction'], registers: [registry],
      collect () {
        if (!transports) return
        const c = transports()
        this.set({ transport: 'link', direction: 'sent' }, c.linkSent)
        this.set({ transport: 'link', direction: 'received' }, c.linkReceived)
        this.set({ transport: 'redis', direction: 'sent' }, c.redisSent)
        this.set({ transport: 'redis', direction: 'received' }, c.redisReceived)
      },
    }),
    /** Where busTransport reads its figures (set by the cluster runtime). */
    setBusTransportSource (fn: () => BusTransportCounts): void { transports = fn },
    linksUp: new Gauge({ name: 'thingmesh_cluster_links_up', help: 'outgoing direct links to other nodes that are up (authenticated)', registers: [registry], collect () { if (transports) this.set(transports().linksUp) } }),
    linkEvents: new Counter({ name: 'thingmesh_cluster_link_events_total', help: 'cluster link events: up, down, connect_failed, cut (stuck or unanswered), rejected_auth (no proof of the cluster secret), rejected_stale (meant for an earlier incarnation of this node), rejected_malformed, rejected_timeout (no handshake in time), rejected_ack (an ack of a QoS 1 batch never sent or acknowledged already), ack_timeout (a QoS 1 batch unacknowledged too long)', labelNames: ['event'], registers: [registry] }),
    linkMarkerTimeouts: new Gauge({ name: 'thingmesh_cluster_link_marker_timeouts_total', help: 'times QoS 0 batches waiting to switch from Redis to a link went through Redis because the marker was not acknowledged in time', registers: [registry], collect () { if (transports) this.set(transports().markerTimeouts) } }),
    linkQos1Batches: new Gauge({ name: 'thingmesh_cluster_link_qos1_batches_total', help: 'QoS 1 bus batches sent over a direct link: acked (the receiver delivered them), resent (the link went down or the ack was late; sent again through Redis and its replay log)', labelNames: ['outcome'], registers: [registry], collect () { if (!transports) return; const c = transports(); this.set({ outcome: 'acked' }, c.linkAcked); this.set({ outcome: 'resent' }, c.linkResent) } }),
    busDropped: new Gauge({ name: 'thingmesh_bus_dropped_total', help: 'publishes Redis refused (QoS0 dropped, QoS>0 refused to the publisher)', registers: [registry] }),
    rejected: new Counter({ name: 'thingmesh_clients_rejected_total', help: 'connections closed for bad input or policy', labelNames: ['reason'], registers: [registry] }),
    slowConsumers: new Counter({ name: 'thingmesh_slow_consumer_total', help: 'messages not written to a client over --max-client-buffer-bytes: action qos0_dropped (message dropped) or disconnected (QoS1/2; the client was disconnected)', labelNames: ['action'], registers: [registry] }),
    queueDropped: new Counter({ name: 'thingmesh_queue_dropped_total', help: 'queued messages dropped by the per-client queue cap (oldest first)', registers: [registry] }),
    replicationShortfalls: new Counter({ name: 'thingmesh_replication_shortfalls_total', help: 'QoS>0 publish batches refused because fewer Redis replicas than --redis-wait-replicas confirmed in time', registers: [registry] }),
    sessionsExpired: new Counter({ name: 'thingmesh_sessions_expired_total', help: 'persistent sessions deleted after --session-expiry-sec', registers: [registry] }),
    takeovers: new Counter({ name: 'thingmesh_session_takeovers_total', help: 'connections closed because their client id connected elsewhere', registers: [registry] }),
    willsPublished: new Counter({ name: 'thingmesh_dead_node_wills_total', help: 'wills this node published for clients of dead nodes', registers: [registry] }),
    indexResyncs: new Counter({ name: 'thingmesh_subscription_index_resyncs_total', help: 'rebuilds of the subscription index from Redis', registers: [registry] }),
    unhandledRejections: new Counter({ name: 'thingmesh_unhandled_rejections_total', help: 'promise rejections nothing handled (bugs; each is logged with code BROKER_UNHANDLED_REJECTION)', registers: [registry] }),
    rejoins: new Counter({ name: 'thingmesh_cluster_rejoins_total', help: 'times this process came back as a new incarnation after the cluster declared it dead (--on-fenced rejoin)', registers: [registry] }),
    pubsubCuts: new Counter({ name: 'thingmesh_pubsub_reconnects_total', help: 'times the Redis pub/sub link was lost and re-established', registers: [registry] }),
    busReplayed: new Counter({ name: 'thingmesh_bus_replayed_total', help: 'batches of QoS 1/2 publishes the pub/sub link missed, delivered from the replay log after it came back', registers: [registry] }),
    auth: new Counter({ name: 'thingmesh_auth_total', help: 'CONNECT authentication outcomes (ok_cached, ok_hashed, ok_shared, anonymous, bad_credentials, required, throttled, busy, client_id, cert_mismatch, unavailable)', labelNames: ['result'], registers: [registry] }),
    authQueue: new Gauge({ name: 'thingmesh_auth_hash_queue', help: 'password hashes waiting for a slot', registers: [registry] }),
    adminRequests: new Counter({ name: 'thingmesh_admin_requests_total', help: 'admin requests answered by this node, by outcome (ok or error code)', labelNames: ['result'], registers: [registry] }),
    scalingRecommendation: new Gauge({ name: 'thingmesh_scaling_recommendation', help: 'load-based scaling advice: 1 for the advised action (scale-out, scale-in, hold), 0 for the others', labelNames: ['action'], registers: [registry] }),
    nodeConnections: new Gauge({ name: 'thingmesh_cluster_node_connections', help: 'connections of each live member, from its membership record', labelNames: ['node'], registers: [registry] }),
    nodeCpu: new Gauge({ name: 'thingmesh_cluster_node_cpu_percent', help: 'process CPU of each live member over its last heartbeat, % of one core', labelNames: ['node'], registers: [registry] }),
    nodeEventLoopP99: new Gauge({ name: 'thingmesh_cluster_node_event_loop_p99_seconds', help: 'event-loop delay p99 of each live member over its last heartbeat', labelNames: ['node'], registers: [registry] }),
    nodeMessagesIn: new Gauge({ name: 'thingmesh_cluster_node_messages_in_per_second', help: 'PUBLISH packets per second received from clients by each live member', labelNames: ['node'], registers: [registry] }),
    nodeMessagesOut: new Gauge({ name: 'thingmesh_cluster_node_messages_out_per_second', help: 'PUBLISH packets per second forwarded to clients by each live member', labelNames: ['node'], registers: [registry] }),
  }
  return m
}

export type Metrics = ReturnType<typeof createMetrics>

export interface BusTransportCounts { linkSent: number, linkReceived: number, redisSent: number, redisReceived: number, linksUp: number, markerTimeouts: number, linkAcked: number, linkResent: number }
