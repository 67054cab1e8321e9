import { ThingmeshError } from '../errors.ts'

/**
 * Runs at most `concurrency` tasks at once and queues at most `maxQueued`
 * more; beyond that a task is refused at once (AUTH_BUSY). scrypt runs on
 * libuv's thread pool (4 threads by default), which file and DNS work share:
 * bounding hash work keeps the rest of the node responsive during a storm,
 * and the bounded queue keeps memory and wait time finite.
 */
export class BoundedWork {
  private running = 0
  private readonly queue: Array<() => void> = []

  constructor (private readonly concurrency: number, private readonly maxQueued: number) {}

  get active (): number { return this.running }
  get queued (): number { return this.queue.length }

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.queue.length >= this.maxQueued) throw new ThingmeshError('AUTH_BUSY')
      await new Promise<void>((resolve) => this.queue.push(resolve))
    } else {
      this.running++
    }
    try {
      return await task()
    } finally {
      const next = this.queue.shift()
      // The slot passes straight to the next waiter, so `running` stays put.
      if (next) next(); else this.running--
    }
  }
}
