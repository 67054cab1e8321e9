type Arg = string | Buffer

interface Pending<R> { args: Arg[], resolve: (r: R) => void, reject: (err: Error) => void }

export interface ScriptBatchOptions<R> {
  /** Most items in one call: a script runs atomically, so it blocks Redis for its length. */
  maxPerCall: number
  /** Schedules the flush after the first item of a turn (process.nextTick or setImmediate). */
  defer: (flush: () => void) => void
  /** Runs one script call over the items' arguments, concatenated in order. */
  run: (args: Arg[]) => Promise<unknown[]>
  /** Item `k`'s result from the call's reply. */
  result: (reply: unknown[], k: number) => R
}

/**
 * Calls of one Redis script coalesced: the items added before the deferred
 * flush go to Redis in one call (per maxPerCall), in order, and each caller
 * learns its own item's result, or the call's error. One call per item would
 * cost a Command, an argument conversion, a reply and their garbage each.
 */
export class ScriptBatch<R> {
  private pending: Array<Pending<R>> = []

  constructor (private readonly o: ScriptBatchOptions<R>) {}

  add (...args: Arg[]): Promise<R> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) this.o.defer(() => { this.flush() })
      this.pending.push({ args, resolve, reject })
    })
  }

  private flush (): void {
    const all = this.pending
    this.pending = []
    for (let i = 0; i < all.length; i += this.o.maxPerCall) {
      const batch = all.length <= this.o.maxPerCall ? all : all.slice(i, i + this.o.maxPerCall)
      const args: Arg[] = []
      for (const p of batch) for (const a of p.args) args.push(a)
      this.o.run(args).then((reply) => {
        for (let k = 0; k < batch.length; k++) batch[k]!.resolve(this.o.result(reply, k))
      }, (err: Error) => {
        for (const p of batch) p.reject(err)
      })
    }
  }
}
