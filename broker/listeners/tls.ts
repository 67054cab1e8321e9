import { readFileSync } from 'node:fs'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { ThingmeshError } from '../errors.ts'
import type { ListenerContext } from './context.ts'
import { releaseOnClose } from './tcp.ts'

export interface TlsOptions {
  cert: string
  key: string
  /** CA file: requires and verifies client certificates (mutual TLS). */
  ca?: string
  handshakeTimeoutMs: number
}

/**
 * MQTT over TLS, 1.2 and 1.3 only [S9]. Node's default cipher list already
 * excludes NULL, anonymous and export ciphers. With a CA, a client must show
 * a certificate it signed, and the certificate's CN is the user it acts as.
 */
export function createTlsListener (ctx: ListenerContext, opts: TlsOptions): Server {
  let cert: Buffer, key: Buffer, ca: Buffer | undefined
  try {
    cert = readFileSync(opts.cert)
    key = readFileSync(opts.key)
    ca = opts.ca ? readFileSync(opts.ca) : undefined
  } catch (err) {
    throw new ThingmeshError('BROKER_TLS_CONFIG', `TLS files: ${(err as Error).message}`)
  }
  const server = createServer({
    cert, key, ca,
    minVersion: 'TLSv1.2',
    requestCert: ca !== undefined,
    rejectUnauthorized: ca !== undefined,
    handshakeTimeout: opts.handshakeTimeoutMs,
  }, (socket: TLSSocket) => {
    socket.setNoDelay(true)
    const address = socket.remoteAddress ?? ''
    let certName: string | undefined
    if (ca !== undefined && socket.authorized) {
      const cn = socket.getPeerCertificate().subject?.CN
      certName = Array.isArray(cn) ? cn[0] : cn
    }
    ctx.accept(socket, { transport: 'tls', address, certName })
  })
  // Admission runs on the raw socket, before the (costly) handshake.
  const release = releaseOnClose(ctx)
  server.on('connection', (raw) => {
    const address = raw.remoteAddress ?? ''
    if (!ctx.admit(address, 'tls')) { raw.destroy(); return }
    raw.on('close', release)
  })
  server.on('tlsClientError', (err, socket) => {
    ctx.metrics.rejected.inc({ reason: 'tls_handshake' })
    ctx.log.info({ event: 'tls.handshake_failed', remote: socket.remoteAddress, err: err.message }, 'TLS handshake failed')
  })
  return server
}
