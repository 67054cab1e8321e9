import type { Logger } from '../../log.ts'
import { PeerLink } from './peer.ts'
import { LinkServer } from './server.ts'
import { TransportRouter, type RouterStats } from './router.ts'
import { LINK_MAX_BATCH } from './protocol.ts'

export { TransportRouter } from './router.ts'
export type { Durability, RouterStats } from './router.ts'

/** Where a node's link listener is reached, as announced in its membership record. */
export interface LinkAddress { host: string, port: number }

export interface LinkPeer { brokerId: string, link?: LinkAddress }

export interface ClusterLinksOptions {
  self: string
  secret: Buffer
  log: Logger
  /** A handshake failed for want of the right secret (on either side): the secret may have changed in Redis. */
  onAuthFailure(): void
  /** Redis side of the bus: plain PUBLISH or the replay-log script. */
  redisPublish(target: string, batch: Buffer, durable: boolean): Promise<unknown>
  redisMarker(target: string, token: number): Promise<unknown>
  /** A batch that arrived over the link from `from`; false = malformed. With `delivered`, call it once the batch was delivered locally. */
  receive(from: string, batch: Buffer, delivered?: () => void): boolean
  markerTimeoutMs: number
  syncTimeoutMs: number
  /** A QoS 1 link batch unacknowledged this long cuts the link; it goes again through Redis. */
  ackTimeoutMs: number
  /** QoS 1 batches take the link now, acknowledged on delivery (false: they take Redis and its replay log). Asked per batch. */
  ackedLink(): boolean
  handshakeTimeoutMs: number
  /** Unsent bytes a link may hold before it counts as stuck and is cut. */
  maxBacklogBytes: number
  onEvent(event: LinkEvent): void
}

export type LinkEvent = 'up' | 'down' | 'rejected_auth' | 'rejected_stale' | 'rejected_malformed' | 'rejected_timeout' | 'rejected_ack' | 'ack_timeout' | 'connect_failed' | 'cut'

/** The metric event of a failed or refused link, on either side: a protocol failure is counted by its reason, anything else (backlog, unanswered sync) is a cut. */
function linkEvent (reason: string): LinkEvent {
  switch (reason) {
    case 'auth': return 'rejected_auth'
    case 'stale': return 'rejected_stale'
    case 'malformed': return 'rejected_malformed'
    case 'handshake_timeout': return 'rejected_timeout'
    case 'bad_ack': return 'rejected_ack'
    case 'ack_timeout': return 'ack_timeout'
    default: return 'cut'
  }
}

export interface LinkStats extends RouterStats {
  linksUp: number
}

/**
 * Direct node-to-node links for the bus (see router.ts for what goes where,
 * protocol.ts for the wire). One listener per node, one outgoing link to
 * every live peer that announces a link address.
 */
export class ClusterLinks {
  readonly router: TransportRouter
  private readonly server: LinkServer
  private readonly peers = new Map<string, { link: PeerLink, address: string }>()
  private secret: Buffer
  private lastRejectLog = 0
  private rejectsUnlogged = 0

  constructor (private readonly o: ClusterLinksOptions) {
    this.secret = o.secret
    this.router = new TransportRouter({
      linkTo: (target) => {
        const p = this.peers.get(target)
        if (!p || !p.link.isUp) return null
        if (p.link.backlog > o.maxBacklogBytes) { p.link.cut('backlog'); return null }
        return p.link
      },
      redisPublish: o.redisPublish,
      redisMarker: o.redisMarker,
    }, LINK_MAX_BATCH, o.markerTimeoutMs, o.syncTimeoutMs, o.ackTimeoutMs, o.ackedLink)
    this.server = new LinkServer({
      self: o.self,
      secret: () => this.secret,
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      onBatch: o.receive,
      onAccepted: (from) => o.log.debug({ event: 'link.accepted', from }),
      onRejected: (reason, remote, detail) => {
        o.onEvent(linkEvent(reason))
        if (reason === 'stale') { o.log.info({ event: 'link.stale', remote, detail }, 'refused a link meant for an earlier incarnation of this node'); return }
        this.logReject(reason, remote, detail)
        if (reason === 'auth') o.onAuthFailure()
      },
    })
  }

  listen (host: string, port: number): Promise<number> {
    return this.server.listen(host, port)
  }

  /** Opens links to new peers, drops links to peers gone (dead, fenced, left) or moved. */
  setPeers (members: LinkPeer[]): void {
    const want = new Map<string, string>()
    for (const m of members) if (m.brokerId !== this.o.self && m.link) want.set(m.brokerId, `${m.link.host}:${m.link.port}`)
    for (const [id, p] of this.peers) {
      if (want.get(id) === p.address) continue
      p.link.close()
      this.peers.delete(id)
      this.router.linkDown(id)
      if (!want.has(id)) this.router.forget(id)
    }
    for (const m of members) {
      const address = want.get(m.brokerId)
      if (!address || this.peers.has(m.brokerId)) continue
      this.peers.set(m.brokerId, { address, link: this.open(m.brokerId, m.link!) })
    }
  }

  /** Handshakes from now on use this secret; links already up stay up. */
  setSecret (secret: Buffer): void { this.secret = secret }

  markerSeen (from: string, token: number): void { this.server.markerSeen(from, token) }

  get stats (): LinkStats {
    let up = 0
    for (const p of this.peers.values()) if (p.link.isUp) up++
    return { ...this.router.stats, linksUp: up }
  }

  /** Per peer: 'up' or 'down' (for /healthz). */
  state (): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [id, p] of this.peers) out[id] = p.link.isUp ? 'up' : 'down'
    return out
  }

  close (): void {
    for (const p of this.peers.values()) p.link.close()
    this.peers.clear()
    this.router.close()
    this.server.close()
  }

  private open (peer: string, addr: LinkAddress): PeerLink {
    const { log } = this.o
    let failures = 0
    return new PeerLink({
      self: this.o.self, peer, host: addr.host, port: addr.port, secret: () => this.secret, handshakeTimeoutMs: this.o.handshakeTimeoutMs,
      onUp: () => {
        this.o.onEvent('up')
        failures = 0
        log.info({ event: 'link.up', peer, address: `${addr.host}:${addr.port}` }, 'direct link to a peer is up')
        this.router.linkUp(peer)
      },
      onDown: () => {
        this.o.onEvent('down')
        log.info({ event: 'link.down', peer }, 'direct link to a peer is down; its traffic goes through Redis')
        this.router.linkDown(peer)
      },
      onSynced: (token) => this.router.synced(peer, token),
      onMarkerAck: (token) => this.router.markerAcked(peer, token),
      onAcked: (upTo) => this.router.acked(peer, upTo),
      onFailed: (reason, detail) => {
        if (reason === 'connect') {
          this.o.onEvent('connect_failed')
          // Said once per run of failures: a peer advertising an address this node cannot reach
          // (--link-host 127.0.0.1 on another host) works through Redis, only slower.
          if (++failures === 5) log.warn({ event: 'link.unreachable', peer, address: `${addr.host}:${addr.port}`, err: detail }, 'cannot reach a peer\'s link address (check --link-host / --link-advertise); its traffic goes through Redis')
          else log.debug({ event: 'link.connect_failed', peer, err: detail })
          return
        }
        if (reason === 'auth') this.o.onAuthFailure()
        this.o.onEvent(linkEvent(reason))
        log.warn({ event: 'link.failed', peer, reason, detail }, 'direct link to a peer failed; its traffic goes through Redis')
      },
    })
  }

  /** Refused connections are logged at most once a second (a scanner must not flood the log). */
  private logReject (reason: string, remote: string, detail: string): void {
    const now = Date.now()
    if (now - this.lastRejectLog < 1000) { this.rejectsUnlogged++; return }
    this.o.log.warn({ event: 'link.rejected', reason, remote, detail, code: 'BROKER_LINK_REJECTED', alsoRejected: this.rejectsUnlogged }, 'refused a cluster link connection')
    this.lastRejectLog = now
    this.rejectsUnlogged = 0
  }
}
