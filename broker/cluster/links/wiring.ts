import { randomBytes } from 'node:crypto'
import { networkInterfaces } from 'node:os'
import type { Redis } from 'ioredis'
import type { Logger } from '../../log.ts'
import type { Keys } from '../keys.ts'
import type { ClusterBus } from '../bus.ts'
import { batchOrigin, encodeMarker } from '../codec.ts'
import { ClusterLinks, type LinkAddress, type LinkEvent } from './index.ts'

/** What a node's links are made of: its options, its Redis command connection and its bus. */
export interface LinkWiring {
  brokerId: string
  /** --cluster-secret; without it the secret in Redis (made by the first node). */
  clusterSecret: string | undefined
  host: string
  port: number
  advertise: string | undefined
  redisCommandTimeoutMs: number
  redisWaitReplicas: number
  cmd: Redis
  keys: Keys
  bus: ClusterBus
  log: Logger
  /** The bus's Redis path: plain PUBLISH, or the replay-log script for durable batches. */
  redisPublish(target: string, batch: Buffer, durable: boolean): Promise<unknown>
  onEvent(event: LinkEvent): void
}

export interface NodeLinks {
  links: ClusterLinks
  /** Where the other nodes reach our listener (in our membership record). */
  address: LinkAddress
  /** Publishes received over links (thingmesh_bus_transport_messages_total). */
  readonly received: { count: number }
}

/**
 * Starts a node's link listener (links/index.ts) wired to its bus and Redis.
 * The secret comes from the config or from Redis, where the first node
 * creates it: anyone who can read that Redis can already rewrite every
 * session, so it guards the link port as well as Redis itself is guarded.
 */
export async function startNodeLinks (w: LinkWiring): Promise<NodeLinks> {
  let secret = w.clusterSecret ?? await sharedLinkSecret(w, randomBytes(32).toString('hex'))
  let refreshing = 0
  const received = { count: 0 }
  const links: ClusterLinks = new ClusterLinks({
    self: w.brokerId,
    secret: Buffer.from(secret, 'utf8'),
    log: w.log,
    // Redis lost the key (restarted empty) and a newer node made another: adopt the one in
    // Redis, putting ours back if there is none. At most once every 2 s, whoever knocks.
    onAuthFailure: () => {
      if (w.clusterSecret || Date.now() - refreshing < 2000) return
      refreshing = Date.now()
      sharedLinkSecret(w, secret).then((s) => {
        if (s === secret) return
        secret = s
        links.setSecret(Buffer.from(s, 'utf8'))
        w.log.warn({ event: 'link.secret_changed' }, 'the cluster link secret in Redis changed; using the new one')
      }, () => { /* Redis away: the next failure retries */ })
    },
    redisPublish: w.redisPublish,
    redisMarker: (b, token) => w.cmd.publish(w.keys.busOf(b), encodeMarker(w.brokerId, token)),
    receive: (from, batch, delivered) => {
      if (batchOrigin(batch) !== from) return false
      const n = w.bus.receive(batch, delivered)
      if (n < 0) return false
      received.count += n
      return true
    },
    markerTimeoutMs: 1000,
    syncTimeoutMs: w.redisCommandTimeoutMs,
    // The receiver's delivery may wait on its own Redis (a persistent subscriber's packet id), up to a command timeout.
    ackTimeoutMs: 2 * w.redisCommandTimeoutMs,
    // --redis-wait-replicas asks for a forward that replicated Redis holds: QoS 1 keeps to the replay log
    // then. So it does while our Redis is away: the node refuses QoS 1 it cannot make durable (offline
    // queues, retained) whatever node the subscribers are on, as it did before the links carried QoS 1.
    ackedLink: w.redisWaitReplicas === 0 ? () => w.cmd.status === 'ready' : () => false,
    handshakeTimeoutMs: 5000,
    maxBacklogBytes: 64 * 1024 * 1024,
    onEvent: w.onEvent,
  })
  const port = await links.listen(w.host, w.port)
  const address = advertisedLink(w.host, port, w.advertise)
  w.log.info({ event: 'link.listening', listen: `${w.host}:${port}`, advertise: `${address.host}:${address.port}` }, 'cluster link listener up')
  return { links, address, received }
}

/** The link secret stored in Redis, storing `mine` first if there is none. */
async function sharedLinkSecret (w: LinkWiring, mine: string): Promise<string> {
  await w.cmd.set(w.keys.linkSecret, mine, 'NX')
  const secret = await w.cmd.get(w.keys.linkSecret)
  if (!secret) throw new Error('cluster link secret vanished from Redis right after it was set')
  return secret
}

/** The link address announced to the other nodes: --link-advertise, else the bound one (a wildcard bind: this host's first external IPv4). */
export function advertisedLink (host: string, port: number, advertise: string | undefined): LinkAddress {
  if (advertise) {
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(advertise)
    // No match: a bare IPv6 address (a pod IP), without a port.
    if (!m) return { host: advertise, port }
    return { host: m[1] ?? m[2], port: m[3] ? Number(m[3]) : port }
  }
  if (host !== '0.0.0.0' && host !== '::') return { host, port }
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return { host: a.address, port }
  }
  return { host: '127.0.0.1', port }
}
