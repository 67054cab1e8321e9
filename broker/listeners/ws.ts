import { createServer, type IncomingMessage, type Server } from 'node:http'
import { WebSocketServer, createWebSocketStream } from 'ws'
import type { ListenerContext } from './context.ts'
import { releaseOnClose } from './tcp.ts'

export interface WsOptions {
  /** Allowed Origin values; empty: only requests with no Origin; contains '*': any. */
  origins: string[]
  maxPayload: number
  timeoutMs: number
}

/**
 * MQTT over WebSocket (subprotocol "mqtt") [S8]. A browser always sends an
 * Origin, so the allow-list is what stops another web site from connecting
 * with a user's ambient access; upgrades from other origins get 403 before any
 * MQTT byte. Messages over maxPayload close with 1009; compression is off, so
 * a small frame cannot inflate into a large one.
 */
export function createWsListener (ctx: ListenerContext, opts: WsOptions): Server {
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' })
    res.end('MQTT over WebSocket only\n')
  })
  server.headersTimeout = opts.timeoutMs
  server.requestTimeout = opts.timeoutMs
  const anyOrigin = opts.origins.includes('*')
  const release = releaseOnClose(ctx)
  const wss = new WebSocketServer({
    server,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
    clientTracking: false,
    handleProtocols: (protocols) => protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
    verifyClient: (info: { origin: string, req: IncomingMessage }, cb: (ok: boolean, code?: number, message?: string) => void) => {
      const origin = info.req.headers.origin
      if (origin !== undefined && !anyOrigin && !opts.origins.includes(origin)) {
        ctx.metrics.rejected.inc({ reason: 'ws_origin' })
        ctx.log.info({ event: 'ws.origin_refused', origin: origin.slice(0, 200), remote: info.req.socket.remoteAddress, code: 'BROKER_WS_ORIGIN' }, 'WebSocket upgrade from a foreign Origin refused')
        cb(false, 403, 'Forbidden')
        return
      }
      const address = info.req.socket.remoteAddress ?? ''
      if (!ctx.admit(address, 'ws')) { cb(false, 503, 'Service Unavailable'); return }
      info.req.socket.on('close', release)
      cb(true)
    },
  })
  wss.on('connection', (ws, req) => {
    const stream = createWebSocketStream(ws)
    // A 1009 close or a broken socket surfaces here; aedes also listens.
    stream.on('error', () => {})
    ws.on('error', (err) => {
      ctx.metrics.rejected.inc({ reason: 'ws_error' })
      ctx.log.info({ event: 'ws.closed_on_error', remote: req.socket.remoteAddress, err: err.message }, 'WebSocket closed on a protocol error')
    })
    ctx.accept(stream, { transport: 'ws', address: req.socket.remoteAddress ?? '' })
  })
  return server
}
