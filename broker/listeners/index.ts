import type { Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import type { NodeConfig } from '../config.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { slimClient } from '../mqtt/client-slim.ts'
import { setConnInfo, type ConnInfo } from './conn-info.ts'
import type { ListenerContext } from './context.ts'
import { ConnectionGate } from './gate.ts'
import { createTcpListener } from './tcp.ts'
import { createTlsListener } from './tls.ts'
import { createWsListener } from './ws.ts'

export { connInfoOf, type ConnInfo, type Transport } from './conn-info.ts'

export interface Listeners {
  gate: ConnectionGate
  ports: { mqtt: number, tls?: number, ws?: number }
  /** Stops accepting on every listener (open connections are the broker's to close). */
  close(): void
}

/** Opens the TCP listener and, if configured, TLS and WebSocket, all behind one connection gate. */
export async function startListeners (config: NodeConfig, log: Logger, metrics: Metrics, accept: (conn: Duplex, info: ConnInfo) => void): Promise<Listeners> {
  const gate = new ConnectionGate(config)
  const ctx: ListenerContext = {
    gate, log, metrics,
    admit (address, transport) {
      const refused = gate.admit(address)
      if (refused === null) return true
      metrics.rejected.inc({ reason: refused })
      log.info({ event: 'connection.refused', reason: refused, transport, remote: address, code: refused === 'connect_rate' ? 'BROKER_LIMIT_CONNECT_RATE' : 'BROKER_LIMIT_CONNECTIONS' }, 'connection refused by a limit')
      return false
    },
    accept (conn, info) {
      setConnInfo(conn, info)
      accept(conn, info)
      slimClient(conn)
    },
  }
  const servers: Server[] = []
  const listen = async (server: Server, port: number): Promise<number> => {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, config.host, () => { server.off('error', reject); resolve() })
    })
    servers.push(server)
    return (server.address() as AddressInfo).port
  }
  try {
    const ports: Listeners['ports'] = { mqtt: await listen(createTcpListener(ctx), config.port) }
    if (config.tlsPort !== undefined) {
      ports.tls = await listen(createTlsListener(ctx, { cert: config.tlsCert!, key: config.tlsKey!, ca: config.tlsCa, handshakeTimeoutMs: config.connectTimeoutMs }), config.tlsPort)
    }
    if (config.wsPort !== undefined) {
      const origins = config.wsOrigins.split(',').map((o) => o.trim()).filter((o) => o !== '')
      ports.ws = await listen(createWsListener(ctx, { origins, maxPayload: config.wsMaxPayload, timeoutMs: config.connectTimeoutMs }) as unknown as Server, config.wsPort)
    }
    return { gate, ports, close: () => { for (const s of servers) s.close() } }
  } catch (err) {
    for (const s of servers) s.close()
    throw err
  }
}
