import { createServer, type Server, type Socket } from 'node:net'
import type { ListenerContext } from './context.ts'

/** Plain MQTT over TCP. Bind it to loopback in production and expose TLS instead [S9]. */
export function createTcpListener (ctx: ListenerContext): Server {
  const release = releaseOnClose(ctx)
  return createServer((socket: Socket) => {
    socket.setNoDelay(true)
    const address = socket.remoteAddress ?? ''
    if (!ctx.admit(address, 'tcp')) { socket.destroy(); return }
    socket.on('close', release)
    ctx.accept(socket, { transport: 'tcp', address })
  })
}

/**
 * One 'close' listener for all of a listener's admitted sockets, which gives
 * the socket's gate slot back. A closure per socket (and `once`'s wrapper)
 * was ~0.2 KB of every idle connection (issue 8). The address is read again
 * from the socket: Node caches it at the first read, which admission made,
 * so it is still there after the close.
 */
export function releaseOnClose (ctx: ListenerContext): (this: Socket) => void {
  return function release (this: Socket) { ctx.gate.release(this.remoteAddress ?? '') }
}
