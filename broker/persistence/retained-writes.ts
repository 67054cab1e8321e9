import { ScriptBatch } from '../cluster/script-batch.ts'

/** Most retained writes in one script call: it runs atomically, so it blocks Redis for its length. */
const MAX_PER_CALL = 256

type Run = (pairs: Array<string | Buffer>) => Promise<number[]>

/**
 * Retained stores and deletes, coalesced per event-loop tick into one
 * `storeRetainedMany` script call (per MAX_PER_CALL). The engine publishes a
 * retained `state` message for every update it applies, so a node publishes
 * thousands per second; one script call each cost the node a Command, an
 * argument conversion and a reply per message. Writes keep their order (one
 * queue, applied in order by the script), and each caller still learns when
 * its own write is in Redis, so aedes delivers a retained publish only after
 * it is stored, as before. Nothing waits for a timer: the queue is flushed on
 * the next tick, after the synchronous publishing that filled it.
 */
export class RetainedWrites {
  private readonly batch: ScriptBatch<number>

  constructor (run: Run) {
    this.batch = new ScriptBatch({ maxPerCall: MAX_PER_CALL, defer: process.nextTick, run, result: (held, k) => Number(held[k] ?? 0) })
  }

  /** Stores `value` as the retained message of `topic` ('' deletes it); resolves to 1 if the topic holds (or held) one. */
  write (topic: string, value: string | Buffer): Promise<number> {
    return this.batch.add(topic, value)
  }
}
