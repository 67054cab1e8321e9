import type { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { skipEmptyQueues } from './lazy-queue.ts'

/** The parts of a freshly built aedes Client (aedes/lib/client.js) this module changes. */
interface FreshClient extends EventEmitter {
  broker: { persistence: Parameters<typeof skipEmptyQueues>[0] }
  conn: Duplex
  _parser: EventEmitter
  _eos: () => void
  subscriptions: object
  _inboundInflight: { readonly size: number, has(v: number): boolean, add(v: number): unknown, delete(v: number): boolean }
  close(): void
}
type Owned = EventEmitter & { client: FreshClient }

/**
 * What aedes' Client builds for every connection and could share (issue 8,
 * memory per idle connection; sizes from heap snapshots of 10,000 idle
 * clients, test/bench/memory-breakdown.ts MEM_SNAPSHOT=1):
 * - `finished(conn, client.close.bind(client))`: seven closures, their
 *   context and four socket listeners (~0.6 KB), for what one shared 'close'
 *   listener does: 'end' and 'error' already close the client;
 * - listeners made with `bind` (socket 'error' and 'end', parser 'error'):
 *   a bound function and its arguments each; one shared function per event
 *   reaches the client through `conn.client` / `parser.client`, which aedes
 *   sets;
 * - `subscriptions`, an `Object.create(null)` (184 B, a dictionary from the
 *   start): an object whose prototype is an empty frozen null-prototype
 *   object inherits no names either [GHSA-52qw-whmv-87c5] and starts at 56 B
 *   (with several filters that no other client uses, each costs ~20 B more
 *   than in a dictionary: V8 makes a hidden class per new name);
 * - `_inboundInflight`, a Set (152 B) only QoS 2 publishers ever fill.
 * Called once per connection, right after aedes built the client. A listener
 * it does not find where expected (another aedes version) is left alone.
 */
export function slimClient (conn: Duplex): void {
  const client = (conn as Duplex & { client?: FreshClient }).client
  if (client === undefined) return
  skipEmptyQueues(client.broker.persistence)
  if (typeof client._eos === 'function') {
    client._eos()
    client._eos = noop
    conn.on('close', closeClient)
  }
  replaceListener(conn, 'error', 'bound emit', emitClientError)
  replaceListener(conn, 'end', 'bound close', closeClient)
  replaceListener(client._parser, 'error', 'bound emit', emitClientError)
  client.subscriptions = Object.create(NO_NAMES) as object
  client._inboundInflight = new LazySet()
}

const NO_NAMES = Object.freeze(Object.create(null) as object)

function noop (): void {}

function closeClient (this: Owned): void { this.client.close() }

function emitClientError (this: Owned, err: Error): void { this.client.emit('error', err) }

function replaceListener (emitter: EventEmitter, event: string, name: string, shared: (this: Owned, ...args: never[]) => void): void {
  const fn = emitter.listeners(event).find((l) => l.name === name)
  if (fn === undefined) return
  emitter.removeListener(event, fn as (...args: unknown[]) => void)
  emitter.on(event, shared as (...args: unknown[]) => void)
}

/** The Set operations aedes uses on `_inboundInflight`, with the Set made on the first add. */
class LazySet {
  private set: Set<number> | null = null
  get size (): number { return this.set === null ? 0 : this.set.size }
  has (v: number): boolean { return this.set !== null && this.set.has(v) }
  add (v: number): this { (this.set ??= new Set()).add(v); return this }
  delete (v: number): boolean { return this.set !== null && this.set.delete(v) }
}
