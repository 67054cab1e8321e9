import { randomBytes } from 'node:crypto'
import { createServer, type Server, type Socket } from 'node:net'
import {
  FrameReader, FrameType, HANDSHAKE_MAX_FRAME, LINK_MAX_FRAME, LINK_VERSION, NONCE_BYTES,
  decodeHello, encodeChallenge, frame, proof, proofMatches, tokenFrame,
} from './protocol.ts'

/** stale: a sender still knows an earlier incarnation of this node at this address (until its next heartbeat tells it). */
export type RejectReason = 'auth' | 'stale' | 'malformed' | 'handshake_timeout'

export interface LinkServerOptions {
  self: string
  /** The cluster secret as of now (it may be replaced: ClusterLinks.setSecret). */
  secret(): Buffer
  handshakeTimeoutMs: number
  /**
   * A batch from an authenticated sender; false = it is malformed (the link
   * is closed). With `delivered` (an ACKED_BATCH), call it once every
   * publish in it was delivered locally.
   */
  onBatch(from: string, batch: Buffer, delivered?: () => void): boolean
  onAccepted(from: string): void
  /** A connection refused or closed for breaking the protocol; nothing else is affected. */
  onRejected(reason: RejectReason, remote: string, detail: string): void
}

/**
 * The link listener: accepts connections from the other nodes, checks that
 * each holds the cluster secret (protocol.ts) and hands their batches to the
 * bus. A connection that fails the handshake, sends a frame out of turn or
 * too large, is closed; the others go on.
 */
export class LinkServer {
  private readonly server: Server
  /** The newest authenticated connection from each sender: where its SYNCED and MARKER_ACK go. */
  private readonly senders = new Map<string, Socket>()
  private readonly sockets = new Set<Socket>()

  constructor (private readonly o: LinkServerOptions) {
    this.server = createServer({ noDelay: true }, (s) => this.accept(s))
  }

  listen (host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, host, () => {
        this.server.off('error', reject)
        resolve((this.server.address() as { port: number }).port)
      })
    })
  }

  /** Tells a sender its Redis marker `token` arrived (after every batch it published before it). */
  markerSeen (from: string, token: number): void {
    const s = this.senders.get(from)
    if (s && !s.destroyed) s.write(tokenFrame(FrameType.MARKER_ACK, token))
  }

  close (): void {
    this.server.close()
    for (const s of this.sockets) s.destroy()
  }

  private accept (socket: Socket): void {
    this.sockets.add(socket)
    socket.setKeepAlive(true, 1000)
    const remote = `${socket.remoteAddress}:${socket.remotePort}`
    const reader = new FrameReader(HANDSHAKE_MAX_FRAME)
    const nonce = randomBytes(NONCE_BYTES)
    let stage: 'hello' | 'auth' | 'up' = 'hello'
    let hello: { nonce: Buffer, from: string, to: string } | null = null
    let closed = false
    const acks = new AckCounter((n) => { if (!socket.destroyed) socket.write(tokenFrame(FrameType.BATCH_ACK, n)) })
    const reject = (reason: RejectReason, detail: string): false => {
      if (!closed) { closed = true; this.o.onRejected(reason, remote, detail) }
      socket.destroy()
      return false
    }
    const timer = setTimeout(() => reject('handshake_timeout', 'no authentication in time'), this.o.handshakeTimeoutMs)
    socket.on('data', (chunk: Buffer) => {
      const ok = reader.push(chunk, (type, body) => {
        if (stage === 'up') {
          if (type === FrameType.BATCH) return this.o.onBatch(hello!.from, body) || reject('malformed', 'malformed batch')
          if (type === FrameType.ACKED_BATCH) return this.o.onBatch(hello!.from, body, acks.next()) || reject('malformed', 'malformed batch')
          if (type === FrameType.SYNC && body.length === 4) {
            // Every batch before it was handed to the bus synchronously: the sender may now use Redis.
            socket.write(tokenFrame(FrameType.SYNCED, body.readUInt32BE(0)))
            return true
          }
          return reject('malformed', `unexpected frame type ${type}`)
        }
        if (stage === 'hello') {
          const h = type === FrameType.HELLO ? decodeHello(body) : null
          if (!h || h.version !== LINK_VERSION) return reject('malformed', 'expected HELLO of version ' + LINK_VERSION)
          // A stale address (the node restarted as another incarnation) is refused, as is a loop.
          if (h.to !== this.o.self || h.from === this.o.self) return reject('stale', `link for ${h.to} from ${h.from}`)
          hello = { nonce: Buffer.from(h.nonce), from: h.from, to: h.to }
          socket.write(encodeChallenge(nonce, proof(this.o.secret(), 'R', hello.nonce, nonce, h.from, h.to)))
          stage = 'auth'
          return true
        }
        if (type !== FrameType.AUTH || !proofMatches(proof(this.o.secret(), 'S', hello!.nonce, nonce, hello!.from, hello!.to), body)) {
          return reject('auth', 'wrong proof of the cluster secret')
        }
        clearTimeout(timer)
        stage = 'up'
        reader.max = LINK_MAX_FRAME
        this.senders.get(hello!.from)?.destroy()
        this.senders.set(hello!.from, socket)
        socket.write(frame(FrameType.READY))
        this.o.onAccepted(hello!.from)
        return true
      })
      if (!ok && !closed) reject('malformed', 'bad frame length')
    })
    socket.on('error', () => { /* the close follows */ })
    socket.on('close', () => {
      clearTimeout(timer)
      this.sockets.delete(socket)
      if (hello && this.senders.get(hello.from) === socket) this.senders.delete(hello.from)
    })
  }
}

/**
 * Numbers a connection's ACKED_BATCHes as they arrive and acknowledges them
 * in order: batch n is acknowledged once it and every one before it were
 * delivered (deliveries may complete out of order). The acknowledgements of
 * one turn go out as one cumulative BATCH_ACK.
 */
export class AckCounter {
  private received = 0
  private deliveredUpTo = 0
  /** Delivered batches beyond deliveredUpTo (out of order). */
  private ahead = new Set<number>()
  private scheduled = false

  constructor (private readonly write: (upTo: number) => void) {}

  /** The next batch arrived: returns what to call once it is delivered. */
  next (): () => void {
    const n = ++this.received
    let done = false
    return () => {
      if (done) return
      done = true
      if (n !== this.deliveredUpTo + 1) { this.ahead.add(n); return }
      this.deliveredUpTo = n
      while (this.ahead.size > 0 && this.ahead.delete(this.deliveredUpTo + 1)) this.deliveredUpTo++
      if (!this.scheduled) { this.scheduled = true; process.nextTick(this.flush) }
    }
  }

  private readonly flush = (): void => {
    this.scheduled = false
    this.write(this.deliveredUpTo)
  }
}
