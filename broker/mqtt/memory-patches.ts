import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface ParserInternals {
  packet: object
  error: Error | null
  settings: object
  _list: unknown
  _states: readonly string[]
  _stateCounter: number
  _resetState(): void
  _parseConnect(): { protocolVersion?: number } | undefined
}
const mqttPacket = require('mqtt-packet') as { parser(opt?: object): ParserInternals, writeToStream: { cacheNumbers: boolean } }
const { BufferList } = require('bl') as { BufferList: new () => unknown }

let installed = false

/**
 * mqtt-packet defaults that cost memory and buy nothing for a broker
 * (issue 8, memory per idle connection; measured with
 * test/bench/memory-breakdown.ts):
 * - every parser (one per connection) keeps its unread bytes in a
 *   `BufferListStream`, a full Duplex stream with readable and writable
 *   state; the parser only calls BufferList methods on it (append, consume,
 *   readUInt*, slice, toString), which the plain `BufferList` of the same
 *   package has. About 0.7 KB of live heap per connection;
 * - the first packet written fills a cache of 65,536 two-byte Buffers (one
 *   per message id), about 8 MB of heap for the life of the process, to save
 *   a 2-byte allocation per number written;
 * - every parser keeps the CONNECT packet it parsed for good (as `settings`,
 *   of which it only ever reads `protocolVersion`), and its own copies of an
 *   empty settings object and of the list of its four state names: shared,
 *   frozen objects instead, ~0.2 KB per connection.
 * All are process-wide and change no byte on the wire.
 */
export function installMemoryPatches (): void {
  if (installed) return
  installed = true
  mqttPacket.writeToStream.cacheNumbers = false
  const probe = mqttPacket.parser()
  const Packet = probe.packet.constructor as new () => object
  const proto = Object.getPrototypeOf(probe) as ParserInternals
  proto._resetState = function resetState (this: ParserInternals) {
    this.packet = new Packet()
    this.error = null
    this._list = new BufferList()
    this._stateCounter = 0
  }
  const states = Object.freeze([...probe._states])
  const createParser = mqttPacket.parser
  mqttPacket.parser = function parser (opt?: object) {
    const p = createParser(opt)
    if (opt === undefined) p.settings = NO_SETTINGS
    if (p._states.length === states.length && p._states.every((s, i) => s === states[i])) p._states = states
    return p
  }
  const parseConnect = proto._parseConnect
  proto._parseConnect = function parseConnectOnce (this: ParserInternals) {
    const packet = parseConnect.call(this)
    if (packet !== undefined && this.settings === packet) this.settings = settingsOf(packet.protocolVersion)
    return packet
  }
}

const NO_SETTINGS = Object.freeze({})
const settingsByVersion = new Map<number | undefined, object>()

function settingsOf (protocolVersion: number | undefined): object {
  let s = settingsByVersion.get(protocolVersion)
  if (s === undefined) { s = Object.freeze({ protocolVersion }); settingsByVersion.set(protocolVersion, s) }
  return s
}
