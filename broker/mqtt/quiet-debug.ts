import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

type DebugFactory = ((namespace: string) => (...args: unknown[]) => void) & { enabled(namespace: string): boolean }

function noop (): void {}

let quiet = false

/**
 * mqtt-packet calls its `debug` loggers (disabled unless DEBUG names them)
 * dozens of times per packet in the parser and writer; each call collects
 * its arguments into a fresh array before it learns it is disabled: 2.3% of
 * a node's CPU under bench:engine (issue 8). The loggers are module
 * constants, taken from `require('debug')` when mqtt-packet is first
 * loaded, so they can only be replaced then: this loads mqtt-packet with a
 * `debug` that hands a disabled namespace a no-op (DEBUG=mqtt-packet:*
 * still logs; enabling it later at run time through debug.enable() does
 * not). Other packages keep the real `debug`.
 *
 * Must run before anything imports mqtt-packet (aedes does at import), so
 * bin/thingmesh imports this module first. Returns false when mqtt-packet
 * was already loaded (the patch is then not in place; nothing breaks).
 */
export function quietMqttPacketDebug (): boolean {
  if (quiet) return true
  const packetMain = require.resolve('mqtt-packet')
  if (require.cache[packetMain] !== undefined) return false
  const debugPath = createRequire(packetMain).resolve('debug')
  const real = require(debugPath) as DebugFactory
  const entry = require.cache[debugPath]!
  entry.exports = (namespace: string) => real.enabled(namespace) ? real(namespace) : noop
  try {
    require(packetMain)
  } finally {
    entry.exports = real
  }
  quiet = true
  return true
}

quietMqttPacketDebug()
