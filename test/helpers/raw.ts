import { connect as tcpConnect, type Socket } from 'node:net'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  generate(p: object): Buffer
  parser(opts?: object): NodeJS.EventEmitter & { parse(b: Buffer): void }
}

export interface RawClient {
  socket: Socket
  packets: Array<Record<string, unknown>>
  closed: Promise<number>
  send(p: object | Buffer): void
  next(cmd: string, timeoutMs?: number): Promise<Record<string, unknown>>
}

/** A bare TCP connection that speaks MQTT packets by hand, for malformed and edge-case input. */
export async function rawConnect (port: number): Promise<RawClient> {
  const socket = tcpConnect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => {})
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const packets: Array<Record<string, unknown>> = []
  const waiters: Array<() => void> = []
  parser.on('packet', (p: Record<string, unknown>) => { packets.push(p); for (const w of waiters.splice(0)) w() })
  parser.on('error', () => {})
  socket.on('data', (d) => parser.parse(d))
  const closed = new Promise<number>((resolve) => socket.once('close', () => { resolve(Date.now()); for (const w of waiters.splice(0)) w() }))
  return {
    socket,
    packets,
    closed,
    send (p) { socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p)) },
    async next (cmd, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const i = packets.findIndex((p) => p.cmd === cmd)
        if (i >= 0) return packets.splice(i, 1)[0]
        if (socket.destroyed || Date.now() > deadline) throw new Error(`no ${cmd} received (socket ${socket.destroyed ? 'closed' : 'open'})`)
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, Math.max(0, deadline - Date.now())) })
      }
    },
  }
}

export const connectPacket = (clientId: string, extra: object = {}): object =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 30, ...extra })
