import type { Duplex } from 'node:stream'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { ConnInfo, Transport } from './conn-info.ts'
import type { ConnectionGate } from './gate.ts'

/** What a listener needs from the node: admission, and where to hand the MQTT stream. */
export interface ListenerContext {
  gate: ConnectionGate
  log: Logger
  metrics: Metrics
  /** Runs the gate and records a refusal (log line and metric); true if admitted. */
  admit(address: string, transport: Transport): boolean
  /** Hands an admitted MQTT byte stream to the broker. */
  accept(conn: Duplex, info: ConnInfo): void
}
