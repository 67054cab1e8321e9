/** Most retained writes in one script call: it runs atomically, so it blocks Redis for its length. */
const MAX_PER_CALL = 256

type Run = (pairs: Array<string | Buffer>) => Promise<number[]>

interface Pending { topic: string, value: string | Buffer, resolve: (held: number) => void, reject: (err: Error) => void }

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
  private pending: Pending[] = []

  constructor (private readonly run: Run) {}

  /** Stores `value` as the retained message of `topic` ('' deletes it); resolves to 1 if the topic holds (or held) one. */
  write (topic: string, value: string | Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) process.nextTick(() => { this.flush() })
      this.pending.push({ topic, value, resolve, reject })
    })
  }

  private flush (): void {
    const all = this.pending
    this.pending = []
    for (let i = 0; i < all.length; i += MAX_PER_CALL) {
      const batch = all.slice(i, i + MAX_PER_CALL)
      const pairs: Array<string | Buffer> = []
      for (const w of batch) pairs.push(w.topic, w.value)
      this.run(pairs).then((held) => {
        for (let k = 0; k < batch.length; k++) batch[k]!.resolve(Number(held[k] ?? 0))
      }, (err: Error) => {
        for (const w of batch) w.reject(err)
      })
    }
  }
}
