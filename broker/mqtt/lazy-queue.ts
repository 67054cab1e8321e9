import { createRequire, syncBuiltinESMExports } from 'node:module'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { RedisPersistence } from '../persistence/redis-persistence.ts'

const require = createRequire(import.meta.url)
type Pipeline = ((...args: unknown[]) => unknown) & { [promisify.custom]?: unknown }
const streamModule = require('node:stream') as { pipeline: Pipeline }

/**
 * The outgoing queue of a client that is known to be empty. A real stream
 * that ends at once, so any consumer works with it; the patched `pipeline`
 * below recognises it and skips the stream machinery altogether.
 */
export class NothingQueued extends Readable {
  constructor () { super({ objectMode: true }) }
  override _read (): void { this.push(null) }
}

interface QueueClient { id: string, clean: boolean }
interface Persistence { outgoingStream(client: QueueClient): Readable }

let pipelinePatched = false
const wrapped = new WeakSet<object>()

/**
 * Every CONNECT makes aedes drain the session's outgoing queue with
 * `pipeline(persistence.outgoingStream(client), through(clearQueue), done)`,
 * clean sessions included (it clears what a previous persistent session of
 * that id left). For a queue that is surely empty that is about 13 KB of
 * streams, abort signals and end-of-stream listeners per connect, alive for
 * several ticks, so a connect burst promotes much of it to the old
 * generation: the largest share of an idle connection's resident memory
 * that was not the connection itself (issue 8, test/bench/memory-breakdown.ts).
 *
 * A clean client's queue is surely empty when the persistence wipes it on a
 * clean CONNECT (thingmesh's Redis persistence does, in cleanSubscriptions),
 * or when this node never saw that id connect with a persistent session:
 * aedes' in-memory persistence only queues for stored subscriptions, which
 * only persistent sessions make, and lives no longer than the process.
 */
export function skipEmptyQueues (persistence: Persistence): void {
  if (wrapped.has(persistence)) return
  wrapped.add(persistence)
  patchPipeline()
  const wipesOnClean = persistence instanceof RedisPersistence
  /** Ids that connected with a persistent session and may have left a queue behind. */
  const mayHaveQueue = new Set<string>()
  const original = persistence.outgoingStream
  persistence.outgoingStream = function outgoingStream (this: Persistence, client: QueueClient): Readable {
    if (!client.clean) {
      mayHaveQueue.add(client.id)
    } else if (wipesOnClean || !mayHaveQueue.delete(client.id)) {
      return new NothingQueued()
    }
    return original.call(this, client)
  }
}

/**
 * `stream.pipeline`, process-wide, with one shortcut: a pipeline of a
 * NothingQueued source, one transform and a callback has nothing to carry,
 * so the callback is called on the next tick, as pipeline would. aedes
 * imports `pipeline` as an ES module binding, which `syncBuiltinESMExports`
 * updates.
 */
function patchPipeline (): void {
  if (pipelinePatched) return
  pipelinePatched = true
  const original = streamModule.pipeline
  const patched: Pipeline = function pipeline (this: unknown, ...args: unknown[]): unknown {
    if (args.length === 3 && args[0] instanceof NothingQueued && typeof args[2] === 'function') {
      process.nextTick(args[2] as () => void)
      return args[1]
    }
    return original.apply(this, args)
  }
  patched[promisify.custom] = original[promisify.custom]
  streamModule.pipeline = patched
  syncBuiltinESMExports()
}
