/**
 * Most claims in one script call: it runs atomically, so it blocks Redis for
 * its length (a dozen Redis commands per claim).
 */
const MAX_PER_CALL = 128

/** Runs the claims (clientId, "1"/"0" pairs); resolves to three entries per claim (lua/claimSessions-7.lua). */
type Run = (pairs: string[]) => Promise<Array<number | string>>

export type ClaimReply = [epoch: number, previous: string, subsVersion: number]

interface Pending { clientId: string, persistent: string, resolve: (r: ClaimReply) => void, reject: (err: Error) => void }

/**
 * Session claims, coalesced per event-loop turn into one `claimSessions`
 * script call (per MAX_PER_CALL). aedes starts every CONNECT from its own
 * setImmediate, so a burst of connects claims from many callbacks of one
 * check phase; one script call each cost the node an ioredis command, an
 * auto-pipeline promise and closure and a reply per connect, and in a
 * burst that garbage outlived enough scavenges to be promoted: the largest
 * part of an idle cluster connection's resident memory that was not the
 * connection itself (issue 8, test/bench/memory-breakdown.ts cluster
 * MEM_ALLOC_OLD=1). Claims keep their order (one queue, applied in order by
 * the script) and each caller learns its own result. The queue is flushed
 * from setImmediate, after the check phase that filled it.
 */
export class ClaimBatch {
  private pending: Pending[] = []

  constructor (private readonly run: Run) {}

  claim (clientId: string, persistent: boolean): Promise<ClaimReply> {
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(() => { this.flush() })
      this.pending.push({ clientId, persistent: persistent ? '1' : '0', resolve, reject })
    })
  }

  private flush (): void {
    const all = this.pending
    this.pending = []
    for (let i = 0; i < all.length; i += MAX_PER_CALL) {
      const batch = all.length <= MAX_PER_CALL ? all : all.slice(i, i + MAX_PER_CALL)
      const pairs: string[] = []
      for (const c of batch) pairs.push(c.clientId, c.persistent)
      this.run(pairs).then((out) => {
        for (let k = 0; k < batch.length; k++) batch[k]!.resolve([Number(out[3 * k]), String(out[3 * k + 1]), Number(out[3 * k + 2])])
      }, (err: Error) => {
        for (const c of batch) c.reject(err)
      })
    }
  }
}
