/**
 * The durable side of the bus: every batch that carries a QoS 1/2 publish is
 * appended to the target node's replay log (a Redis stream) and published on
 * its bus channel in one script, with the stream id in front of the batch.
 *
 * Redis pub/sub is at-most-once: frames published while a node's pub/sub
 * link is down (a Redis failover, an output-buffer cut, a network blip) never
 * reach it, and Redis even counts a frame as received when it dies before
 * writing it out. The receiver remembers the last id it delivered and, when
 * its link comes back, reads what it missed from the log before delivering
 * anything newer, so clean subscribers lose nothing that reached Redis (and
 * nothing at all with --redis-wait-replicas). The receiver trims its own log
 * up to what it has delivered, so the log holds about one heartbeat of
 * traffic; a node that vanishes leaves a log that expires after dead-after.
 */

/** A stream id `ms-seq` as two numbers, comparable without string tricks. */
export interface LogId { ms: number, seq: number }

const LOG_ID_ZERO: LogId = { ms: 0, seq: 0 }

export function parseLogId (s: string): LogId | null {
  const dash = s.indexOf('-')
  if (dash <= 0) return null
  const ms = Number(s.slice(0, dash))
  const seq = Number(s.slice(dash + 1))
  return Number.isSafeInteger(ms) && Number.isSafeInteger(seq) && ms >= 0 && seq >= 0 ? { ms, seq } : null
}

function formatLogId (id: LogId): string {
  return `${id.ms}-${id.seq}`
}

function after (a: LogId, b: LogId): boolean {
  return a.ms > b.ms || (a.ms === b.ms && a.seq > b.seq)
}

/** ASCII '0'..'9': a logged message starts with its stream id; a plain batch starts with a version byte (0xb2). */
function startsWithDigit (buf: Buffer): boolean {
  return buf.length > 0 && buf[0] >= 0x30 && buf[0] <= 0x39
}

const NEWLINE = 0x0a

/**
 * Splits a bus channel message into its log id (null for a plain, unlogged
 * batch) and the batch. Returns undefined for a logged message whose id is
 * unreadable; the caller counts it as malformed.
 */
export function splitLogged (message: Buffer): { id: LogId | null, batch: Buffer } | undefined {
  if (!startsWithDigit(message)) return { id: null, batch: message }
  const nl = message.indexOf(NEWLINE)
  if (nl <= 0 || nl > 48) return undefined
  const id = parseLogId(message.toString('latin1', 0, nl))
  return id ? { id, batch: message.subarray(nl + 1) } : undefined
}

export interface LogReader {
  /** Entries after `afterId` (exclusive), oldest first, at most `count`. */
  range(afterId: string, count: number): Promise<Array<[string, Buffer]>>
}

export interface CatchUpStats {
  /** Batches delivered from the log after a cut (they missed the live path). */
  replayed: number
  /** Live or logged batches dropped because they were already delivered. */
  duplicates: number
  malformed: number
}

const PAGE = 500

/**
 * Orders a node's incoming bus traffic around pub/sub cuts: live delivery as
 * long as the link holds; after a reconnect, the log first (from the last id
 * delivered), then what arrived live meanwhile, each logged batch once.
 */
export class BusCatchUp {
  readonly stats: CatchUpStats = { replayed: 0, duplicates: 0, malformed: 0 }
  private last: LogId = LOG_ID_ZERO
  private catching = false
  /** Set from the moment the link is lost until the log was read after it came back. */
  private holding = false
  private again = false
  private buffered: Buffer[] = []
  private closed = false

  constructor (
    private readonly reader: LogReader,
    private readonly deliver: (batch: Buffer) => void,
    private readonly onError: (err: Error) => void = () => {},
    private readonly retryMs = 200,
  ) {}

  /** The last logged id delivered: the receiver may trim its log up to here. */
  get lastDelivered (): string { return formatLogId(this.last) }

  /** A message from the bus channel. */
  live (message: Buffer): void {
    if (this.closed) return
    if (this.holding || this.catching) { this.buffered.push(message); return }
    this.accept(message)
  }

  /**
   * The pub/sub link dropped. Whatever arrives live after it comes back is
   * held until resume() has read the log: delivered first, it would move the
   * last id past the gap.
   */
  linkLost (): void {
    if (!this.closed) this.holding = true
  }

  /**
   * The pub/sub link is (re)subscribed: deliver what the log holds beyond the
   * last delivered id, then what arrived live meanwhile. Resolves when done;
   * a failed read is retried until it succeeds or the reader is closed.
   */
  async resume (): Promise<void> {
    if (this.catching) { this.again = true; return }
    this.catching = true
    try {
      do {
        this.again = false
        await this.readLog()
      } while (this.again && !this.closed)
      const live = this.buffered
      this.buffered = []
      for (const m of live) this.accept(m)
      this.holding = false
    } finally {
      this.catching = false
    }
  }

  close (): void {
    this.closed = true
    this.holding = false
    this.buffered = []
  }

  private async readLog (): Promise<void> {
    for (;;) {
      if (this.closed) return
      let entries: Array<[string, Buffer]>
      try {
        entries = await this.reader.range(formatLogId(this.last), PAGE)
      } catch (err) {
        this.onError(err as Error)
        await new Promise((resolve) => setTimeout(resolve, this.retryMs))
        continue
      }
      for (const [id, batch] of entries) {
        const parsed = parseLogId(id)
        if (!parsed) { this.stats.malformed++; continue }
        if (!after(parsed, this.last)) continue
        this.last = parsed
        this.stats.replayed++
        this.deliver(batch)
      }
      if (entries.length < PAGE) return
    }
  }

  private accept (message: Buffer): void {
    const split = splitLogged(message)
    if (split === undefined) { this.stats.malformed++; return }
    if (split.id !== null) {
      if (!after(split.id, this.last)) { this.stats.duplicates++; return }
      this.last = split.id
    }
    this.deliver(split.batch)
  }
}
