// MQTT over WebSocket for tests: this machine's mosquitto cannot open a
// websockets listener on 127.0.0.1, so a small proxy bridges ws -> tcp.

import { connect } from 'node:net'
import { WebSocketServer, createWebSocketStream } from 'ws'

export interface WsProxy {
  readonly url: string
  close(): Promise<void>
}

export function startWsProxy(tcpPort: number): Promise<WsProxy> {
  return new Promise((resolve) => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/mqtt' })
    wss.on('connection', (ws) => {
      const stream = createWebSocketStream(ws)
      const tcp = connect(tcpPort, '127.0.0.1')
      stream.pipe(tcp).pipe(stream)
      const end = (): void => {
        tcp.destroy()
        stream.destroy()
      }
      stream.on('error', end)
      tcp.on('error', end)
      tcp.on('close', end)
    })
    wss.on('listening', () => {
      const addr = wss.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      resolve({
        url: `ws://127.0.0.1:${port}/mqtt`,
        close: () =>
          new Promise<void>((r) => {
            for (const c of wss.clients) c.terminate()
            wss.close(() => r())
          }),
      })
    })
  })
}
