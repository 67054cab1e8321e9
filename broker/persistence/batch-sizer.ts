/**
 * How many retained messages to ask Redis for in the next read (HSCAN COUNT,
 * HMGET fields), so that a batch holds about `targetBytes` whatever the
 * messages' size. A fixed count bounded a batch by count only: 1,000
 * messages of 1 MiB each is a GiB held in the node (issue 8). The first read
 * asks for `first` (the sizes are unknown yet); each later one is sized from
 * the average bytes per message seen so far, within [min, max]. One message
 * larger than the target is still read whole: that is its own size.
 */
export class BatchSizer {
  private bytes = 0
  private messages = 0

  constructor (
    private readonly targetBytes: number,
    private readonly first: number,
    private readonly min: number,
    private readonly max: number,
  ) {}

  /** The count to ask for next. */
  next (): number {
    if (this.messages === 0) return this.first
    const perMessage = Math.max(1, this.bytes / this.messages)
    return Math.max(this.min, Math.min(this.max, Math.floor(this.targetBytes / perMessage)))
  }

  /** A read returned `messages` messages of `bytes` in all. */
  saw (messages: number, bytes: number): void {
    this.messages += messages
    this.bytes += bytes
  }
}
