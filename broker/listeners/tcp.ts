import { createServer, type Server, type Socket } from 'node:net'
import type { ListenerContext } from './context.ts'
import { connInfoOf } from './conn-info.ts'

/** Plain MQTT over TCP. Bind it to loopback in production and expose TLS instead [S9]. */
export function createTcpListener (ctx: ListenerContext): Server {
  const release = releaseOnClose(ctx)
  return createServer((socket: Socket) => {
    socket.setNoDelay(true)
    const address = peerAddress(socket)
    if (!ctx.admit(address, 'tcp')) { socket.destroy(); return }
    socket.on('close', release)
    ctx.accept(socket, { transport: 'tcp', address })
  })
}

/**
 * One 'close' listener for all of a listener's admitted sockets, which gives
 * the socket's gate slot back. A closure per socket (and `once`'s wrapper)
 * was ~0.2 KB of every idle connection (issue 8). The address is the one the
 * connection was accepted with (its ConnInfo); a socket without one (TLS and
 * WebSocket listeners release the raw socket under the stream they accept)
 * is asked again: Node cached it at the first read, which admission made, so
 * it is still there after the close.
 */
export function releaseOnClose (ctx: ListenerContext): (this: Socket) => void {
  return function release (this: Socket) { ctx.gate.release(connInfoOf(this)?.address ?? this.remoteAddress ?? '') }
}

interface PeerHandle { getpeername?(out: { address?: string }): number }

/**
 * The remote address, without the `{ address, family, port }` object that
 * `socket.remoteAddress` caches on the socket for its lifetime (56 B of every
 * idle connection, issue 8): read from the handle as Node's _getpeername
 * does. Falls back to `remoteAddress` if the handle is not the one expected.
 */
function peerAddress (socket: Socket): string {
  const handle = (socket as Socket & { _handle?: PeerHandle | null })._handle
  if (typeof handle?.getpeername !== 'function') return socket.remoteAddress ?? ''
  const out: { address?: string } = {}
  return handle.getpeername(out) === 0 && out.address !== undefined ? out.address : socket.remoteAddress ?? ''
}
