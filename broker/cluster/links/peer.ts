import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import {
  FrameReader, FrameType, HANDSHAKE_MAX_FRAME, LINK_MAX_FRAME, LINK_VERSION, NONCE_BYTES,
  decodeChallenge, encodeHello, frame, frameHeader, newlyAcked, proof, proofMatches, tokenFrame,
} from './protocol.ts'

export interface PeerLinkOptions {
  self: string
  peer: string
  host: string
  port: number
  /** The cluster secret as of now (it may be replaced: ClusterLinks.setSecret). */
  secret(): Buffer
  handshakeTimeoutMs: number
  /** Authenticated both ways: batches may flow. */
  onUp(): void
  /** Was up, is not any more (anything written may or may not have arrived). */
  onDown(): void
  onSynced(token: number): void
  onMarkerAck(token: number): void
  /** The peer delivered the ACKED_BATCHes numbered up to `upTo` on this connection (sendAcked's numbers). */
  onAcked(upTo: number): void
  /** The connection failed before it was up, or the peer broke the protocol. */
  onFailed(reason: string, detail?: string): void
}

const BACKOFF_MIN_MS = 50
const BACKOFF_MAX_MS = 2000

/**
 * The outgoing link from this node to one peer: connects, authenticates
 * (protocol.ts), reconnects with backoff until closed. Only ever writes
 * batches and syncs; the peer answers on the same connection.
 */
export class PeerLink {
  private socket: Socket | null = null
  private up = false
  private closed = false
  private backoffMs = BACKOFF_MIN_MS
  private retryTimer: NodeJS.Timeout | null = null
  /** ACKED_BATCHes written and acknowledged on the current connection. */
  private ackedSent = 0
  private acked = 0

  constructor (private readonly o: PeerLinkOptions) {
    this.open()
  }

  /** False from a cut on, before the socket's close reports it down. */
  get isUp (): boolean { return this.up && this.socket !== null && !this.socket.destroyed }
  /** Bytes written but not yet taken by the kernel. */
  get backlog (): number { return this.socket?.writableLength ?? 0 }

  sendBatch (batch: Buffer): void {
    this.writeBatch(FrameType.BATCH, batch)
  }

  /**
   * A batch the peer acknowledges once delivered; returns its number on this
   * connection (onAcked reports it). The numbers restart with each connection.
   */
  sendAcked (batch: Buffer): number {
    this.writeBatch(FrameType.ACKED_BATCH, batch)
    return ++this.ackedSent
  }

  /** One batch in one write (header and batch gathered by cork: one writev). */
  private writeBatch (type: number, batch: Buffer): void {
    const s = this.socket!
    s.cork()
    s.write(frameHeader(type, batch.length))
    s.write(batch)
    s.uncork()
  }

  sync (token: number): void {
    this.socket!.write(tokenFrame(FrameType.SYNC, token))
  }

  /** Drops the connection now; it is reopened after the backoff unless close()d. */
  cut (reason: string): void {
    this.o.onFailed(reason)
    this.socket?.destroy()
  }

  close (): void {
    this.closed = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
    this.socket?.destroy()
  }

  private open (): void {
    if (this.closed) return
    const { self, peer } = this.o
    const socket = connect({ host: this.o.host, port: this.o.port, noDelay: true })
    this.socket = socket
    socket.setKeepAlive(true, 1000)
    const nonce = randomBytes(NONCE_BYTES)
    const reader = new FrameReader(HANDSHAKE_MAX_FRAME)
    let stage: 'challenge' | 'ready' | 'up' = 'challenge'
    let failed = false
    this.ackedSent = 0
    this.acked = 0
    const fail = (reason: string, detail?: string): false => {
      if (!failed) { failed = true; this.o.onFailed(reason, detail) }
      socket.destroy()
      return false
    }
    const timer = setTimeout(() => fail('handshake_timeout'), this.o.handshakeTimeoutMs)
    socket.on('connect', () => { socket.write(encodeHello({ version: LINK_VERSION, nonce, from: self, to: peer })) })
    socket.on('data', (chunk: Buffer) => {
      const ok = reader.push(chunk, (type, body) => {
        if (stage === 'up') {
          if (type === FrameType.SYNCED && body.length === 4) this.o.onSynced(body.readUInt32BE(0))
          else if (type === FrameType.MARKER_ACK && body.length === 4) this.o.onMarkerAck(body.readUInt32BE(0))
          else if (type === FrameType.BATCH_ACK && body.length === 4) {
            const n = newlyAcked(body.readUInt32BE(0), this.acked, this.ackedSent)
            if (n === 0) return fail('bad_ack', `ack for batch ${body.readUInt32BE(0)}; ${this.acked} of ${this.ackedSent} acknowledged`)
            this.acked += n
            this.o.onAcked(this.acked)
          }
          else return fail('malformed', `unexpected frame type ${type}`)
          return true
        }
        if (stage === 'challenge') {
          const c = type === FrameType.CHALLENGE ? decodeChallenge(body) : null
          if (!c) return fail('malformed', 'expected CHALLENGE')
          const secret = this.o.secret()
          if (!proofMatches(proof(secret, 'R', nonce, c.nonce, self, peer), c.proof)) return fail('auth', 'the peer does not hold the cluster secret')
          socket.write(frame(FrameType.AUTH, proof(secret, 'S', nonce, c.nonce, self, peer)))
          stage = 'ready'
          return true
        }
        if (type !== FrameType.READY) return fail('malformed', 'expected READY')
        clearTimeout(timer)
        stage = 'up'
        reader.max = LINK_MAX_FRAME
        this.up = true
        this.backoffMs = BACKOFF_MIN_MS
        this.o.onUp()
        return true
      })
      if (!ok && !failed) fail('malformed', 'bad frame length')
    })
    socket.on('error', (err) => { if (!this.up && !failed) { failed = true; this.o.onFailed('connect', err.message) } })
    socket.on('close', () => {
      clearTimeout(timer)
      if (this.socket === socket) this.socket = null
      if (this.up) { this.up = false; this.o.onDown() }
      if (this.closed) return
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.open() }, this.backoffMs)
      this.retryTimer.unref()
      this.backoffMs = Math.min(BACKOFF_MAX_MS, this.backoffMs * 2)
    })
  }
}
