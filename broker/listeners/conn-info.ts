import type { Duplex } from 'node:stream'

export type Transport = 'tcp' | 'tls' | 'ws'

/** What the transport knows about a connection that MQTT does not carry. */
export interface ConnInfo {
  transport: Transport
  /** Remote IP address ('' if unknown). */
  address: string
  /** CN of a client certificate verified against --tls-ca (mutual TLS only). */
  certName?: string
}

const infos = new WeakMap<object, ConnInfo>()

export function setConnInfo (conn: Duplex, info: ConnInfo): void { infos.set(conn, info) }
export function connInfoOf (conn: object): ConnInfo | undefined { return infos.get(conn) }
