import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

interface ParserInternals { packet: object, error: Error | null, _list: unknown, _stateCounter: number, _resetState(): void }
const mqttPacket = require('mqtt-packet') as { parser(): ParserInternals, writeToStream: { cacheNumbers: boolean } }
const { BufferList } = require('bl') as { BufferList: new () => unknown }

let installed = false

/**
 * Two mqtt-packet defaults that cost memory and buy nothing for a broker
 * (issue 8, memory per idle connection; measured with
 * test/bench/memory-breakdown.ts):
 * - every parser (one per connection) keeps its unread bytes in a
 *   `BufferListStream`, a full Duplex stream with readable and writable
 *   state; the parser only calls BufferList methods on it (append, consume,
 *   readUInt*, slice, toString), which the plain `BufferList` of the same
 *   package has. About 0.7 KB of live heap per connection;
 * - the first packet written fills a cache of 65,536 two-byte Buffers (one
 *   per message id), about 8 MB of heap for the life of the process, to save
 *   a 2-byte allocation per number written.
 * Both are process-wide and change no byte on the wire.
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
}
