import { createHmac, randomBytes } from 'node:crypto'

/**
 * Remembers passwords verified recently, so a client reconnecting (or a
 * reconnect storm after a node dies) costs an HMAC instead of a scrypt.
 *
 * Keyed safely: the key is HMAC-SHA256 under a per-process random secret of
 * (username, password, stored hash). Neither passwords nor fast hashes of them
 * leave the process, and the stored hash in the key means any change to the
 * user's password invalidates its entries at once, on every node, with no
 * message to lose: the caller always reads the current record first.
 */
export class CredentialCache {
  private readonly secret = randomBytes(32)
  private readonly entries = new Map<string, number>()
  hits = 0
  misses = 0

  constructor (private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  keyOf (username: string, password: Buffer, hash: string): string {
    return this.key(username, password, hash)
  }

  private key (username: string, password: Buffer, hash: string): string {
    const h = createHmac('sha256', this.secret)
    h.update(username); h.update('\u0000'); h.update(hash); h.update('\u0000'); h.update(password)
    return h.digest('base64')
  }

  has (username: string, password: Buffer, hash: string): boolean {
    if (this.ttlMs === 0) { this.misses++; return false }
    const k = this.key(username, password, hash)
    const exp = this.entries.get(k)
    if (exp !== undefined && exp > Date.now()) { this.hits++; return true }
    if (exp !== undefined) this.entries.delete(k)
    this.misses++
    return false
  }

  add (username: string, password: Buffer, hash: string): void {
    if (this.ttlMs === 0) return
    const k = this.key(username, password, hash)
    this.entries.delete(k)
    this.entries.set(k, Date.now() + this.ttlMs)
    // Map iterates in insertion order: the first entry is the oldest.
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string)
  }

  clear (): void { this.entries.clear() }
  get size (): number { return this.entries.size }
}
