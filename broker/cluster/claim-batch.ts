import { ScriptBatch } from './script-batch.ts'

/**
 * Most claims in one script call: it runs atomically, so it blocks Redis for
 * its length (a dozen Redis commands per claim).
 */
const MAX_PER_CALL = 128

/** Runs the claims (clientId, "1"/"0" pairs); resolves to three entries per claim (lua/claimSessions-7.lua). */
type Run = (pairs: Array<string | Buffer>) => Promise<unknown[]>

export type ClaimReply = [epoch: number, previous: string, subsVersion: number]

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
  private readonly batch: ScriptBatch<ClaimReply>

  constructor (run: Run) {
    this.batch = new ScriptBatch<ClaimReply>({
      maxPerCall: MAX_PER_CALL,
      defer: setImmediate,
      run,
      result: (out, k) => [Number(out[3 * k]), String(out[3 * k + 1]), Number(out[3 * k + 2])],
    })
  }

  claim (clientId: string, persistent: boolean): Promise<ClaimReply> {
    return this.batch.add(clientId, persistent ? '1' : '0')
  }
}
