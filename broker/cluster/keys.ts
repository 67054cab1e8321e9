/**
 * Every Redis key thingmesh owns is built here, and nowhere else.
 *
 * All keys share one hash tag, `{<cluster>}`, so multi-key Lua scripts stay
 * legal on a sharded Redis and two clusters can share one Redis. The full
 * list, with types and lifetimes, is in docs/architecture.md.
 */
export interface Keys {
  readonly prefix: string
  /** HASH topic -> encoded retained packet. */
  readonly retained: string
  /** ZSET (all scores 0, ordered by topic) of the topics in `retained`: wildcard look-ups by literal prefix. */
  readonly retainedIndex: string
  /** HASH brokerId -> JSON member record (see membership.ts). */
  readonly nodes: string
  /** ZSET brokerId -> last heartbeat (Redis server time, ms). */
  readonly alive: string
  /** SET of brokerIds declared dead whose wills are not all published yet. */
  readonly dead: string
  /** ZSET brokerId -> when it was declared dead (Redis ms), kept a day: a reaped node that comes back is fenced even after its wills were published. */
  readonly gone: string
  /** HASH clientId -> "brokerId|epoch|state": who holds each client's connection. */
  readonly owners: string
  /** STRING counter: connection epochs, strictly increasing across the cluster. */
  readonly epoch: string
  /** HASH clientId -> JSON will record {brokerId, packet}. */
  readonly wills: string
  /** SET of clientIds whose will is held by a broker. */
  willsOf(brokerId: string): string
  /** SET of clientIds that have stored subscriptions. */
  readonly subClients: string
  /** STRING counter bumped with every subscription change (index version). */
  readonly subVersion: string
  /** HASH topic filter -> JSON {qos, rh, rap, nl}. */
  subsOf(clientId: string): string
  /** ZSET clientId -> last disconnect (ms) of persistent sessions, for expiry. */
  readonly sessions: string
  /** LIST of packet keys, oldest first: the client's outgoing queue. */
  queueOf(clientId: string): string
  /** HASH packet key -> encoded packet. */
  queuedPacketsOf(clientId: string): string
  /** HASH messageId -> packet key, and packet key -> messageId ("#"-prefixed field). */
  inflightOf(clientId: string): string
  /** HASH messageId -> encoded packet: inbound QoS2 awaiting PUBREL. */
  incomingOf(clientId: string): string
  /** Pub/sub channel on which one node receives publishes from the others (batched frames). */
  busOf(brokerId: string): string
  /** STREAM of the QoS 1/2 batches sent to a node, trimmed by that node as it delivers them (cluster/bus-log.ts). */
  busLogOf(brokerId: string): string
  /** SET of topic filters with subscribers on a node: where publishes must go. */
  interestOf(brokerId: string): string
  /** STRING counter: version of a node's interest set. */
  interestSeqOf(brokerId: string): string
  /** Pub/sub channel carrying control messages (versioned JSON). */
  readonly controlChannel: string
  /** STRING: the cluster secret that authenticates node-to-node links, created by the first node (SET NX) unless --cluster-secret is given. */
  readonly linkSecret: string
  /** HASH username -> JSON user record {v, username, role, hash, ...} (see auth/users.ts). */
  readonly users: string
  /** SET of usernames with the admin role, so "last admin" is checked atomically. */
  readonly admins: string
  /** LIST of JSON audit records, newest first, capped (see admin/audit.ts). */
  readonly audit: string
  /** Thing engine keys (engine/runtime); layout in docs/engine.md. */
  readonly engine: EngineKeys
}

export interface EngineKeys {
  /** HASH partition -> "brokerId|token|expiresAt" (Redis server ms): partition leases. */
  readonly leases: string
  /** STRING counter: fencing tokens, strictly increasing across the cluster. */
  readonly fence: string
  /** ZSET brokerId -> last engine beat (Redis server ms): nodes that may own partitions. */
  readonly alive: string
  /** HASH partition -> id of the last log entry applied (the checkpoint). */
  readonly checkpoints: string
  /** STREAM: the partition's input log (device writes, desired writes, rule writes, ticks). */
  logOf(partition: number): string
  /** HASH thingId -> JSON ThingState of the things in the partition. */
  stateOf(partition: number): string
  /** LIST of JSON effect batches committed but not yet published. */
  outboxOf(partition: number): string
  /** STREAM of a property's values (properties with history), entry id = value ts. */
  historyOf(thingId: string, property: string): string
  /** HASH "thingId/alert" -> JSON alert record: the alert index for listing. */
  readonly alerts: string
  /** STRING: current definitions version. */
  readonly defsVersion: string
  /** HASH version -> JSON list of definition changes (the ordered definitions log). */
  readonly defsLog: string
  /** HASH brokerId -> definitions version the node runs. */
  readonly defsApplied: string
  /** Pub/sub channel: definition notices and acknowledgements (versioned JSON). */
  readonly channel: string
  /** STRING: the stored format engine nodes write (engine/runtime/formats.ts); absent = 1 on a cluster that ran the engine before. */
  readonly format: string
}

export function createKeys (cluster: string): Keys {
  const p = `tm:{${cluster}}:`
  return Object.freeze({
    prefix: p,
    retained: p + 'retained',
    retainedIndex: p + 'retained:idx',
    nodes: p + 'nodes',
    alive: p + 'alive',
    dead: p + 'dead',
    gone: p + 'gone',
    owners: p + 'owners',
    epoch: p + 'epoch',
    wills: p + 'wills',
    willsOf: (b: string) => p + 'wills:' + b,
    subClients: p + 'subclients',
    subVersion: p + 'subver',
    subsOf: (c: string) => p + 'subs:' + c,
    sessions: p + 'sessions',
    queueOf: (c: string) => p + 'q:' + c,
    queuedPacketsOf: (c: string) => p + 'qp:' + c,
    inflightOf: (c: string) => p + 'qm:' + c,
    incomingOf: (c: string) => p + 'in:' + c,
    busOf: (b: string) => p + 'bus:' + b,
    busLogOf: (b: string) => p + 'buslog:' + b,
    interestOf: (b: string) => p + 'interest:' + b,
    interestSeqOf: (b: string) => p + 'interestseq:' + b,
    controlChannel: p + 'ctl',
    linkSecret: p + 'linksecret',
    users: p + 'users',
    admins: p + 'admins',
    audit: p + 'audit',
    engine: Object.freeze({
      leases: p + 'eng:leases',
      fence: p + 'eng:fence',
      alive: p + 'eng:alive',
      checkpoints: p + 'eng:ckpt',
      logOf: (n: number) => p + 'eng:log:' + n,
      stateOf: (n: number) => p + 'eng:state:' + n,
      outboxOf: (n: number) => p + 'eng:outbox:' + n,
      historyOf: (t: string, prop: string) => p + 'eng:hist:' + t + ':' + prop,
      alerts: p + 'eng:alerts',
      defsVersion: p + 'eng:defs:version',
      defsLog: p + 'eng:defs:log',
      defsApplied: p + 'eng:defs:applied',
      channel: p + 'eng:ctl',
      format: p + 'eng:format',
    }),
  })
}
