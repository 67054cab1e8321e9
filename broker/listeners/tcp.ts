import { createServer, type Server, type Socket } from 'node:net'
import type { ListenerContext } from './context.ts'

/** Plain MQTT over TCP. Bind it to loopback in production and expose TLS instead [S9]. */
export function createTcpListener (ctx: ListenerContext): Server {
  return createServer((socket: Socket) => {
    socket.setNoDelay(true)
    const address = socket.remoteAddress ?? ''
    if (!ctx.admit(address, 'tcp')) { socket.destroy(); return }
    socket.once('close', () => ctx.gate.release(address))
    ctx.accept(socket, { transport: 'tcp', address })
  })
}
