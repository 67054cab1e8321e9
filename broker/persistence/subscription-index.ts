import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const QlobberSub = require('qlobber/aedes/qlobber-sub') as new (opts: object) => Trie

interface Trie {
  add(topic: string, val: StoredSub): void
  remove(topic: string, val: { clientId: string, topic: string }): void
  match(topic: string): StoredSub[]
  clear(): void
  subscriptionsCount: number
}

export interface StoredSub {
  clientId: string
  topic: string
  qos: number
  rh?: number
  rap?: boolean
  nl?: boolean
}

export interface SubscriptionChange {
  ver: number
  c: string
  op: 'add' | 'rm' | 'clean'
  /** add: [filter, json]; rm: filter */
  ch: Array<[string, string] | string>
}

/**
 * This node's copy of every persistent (QoS>0) subscription in the cluster,
 * used to queue messages for offline clients on the publishing node.
 *
 * Changes carry the version Redis gave them and are applied strictly in
 * order. A gap (a change lost while the pub/sub link was down) or a reconnect
 * marks the index stale; the owner then rebuilds it from an atomic snapshot
 * (`load`) and replays what arrived meanwhile. Until then `stale` is true and
 * the node reports itself unhealthy rather than serve from a stale index.
 */
export class SubscriptionIndex {
  private trie: Trie = new QlobberSub(QLOBBER_OPTIONS)
  /** clientId -> filter -> qos, for clean/rm and counting. */
  private byClient = new Map<string, Map<string, number>>()
  version = 0
  stale = true
  private pending: SubscriptionChange[] = []
  private waiters = new Map<number, () => void>()

  match (topic: string): StoredSub[] {
    return this.trie.match(topic)
  }

  get clientCount (): number { return this.byClient.size }
  get subscriptionCount (): number { return this.trie.subscriptionsCount }

  /** Resolves once this node's index has applied `ver` (or was rebuilt past it). */
  waitFor (ver: number): Promise<void> {
    if (!this.stale && ver <= this.version) return Promise.resolve()
    return new Promise((resolve) => {
      const prev = this.waiters.get(ver)
      this.waiters.set(ver, prev ? () => { prev(); resolve() } : resolve)
    })
  }

  /** Returns false when the change reveals a gap: the caller must resync. */
  apply (change: SubscriptionChange): boolean {
    if (this.stale) { this.pending.push(change); return true }
    if (change.ver <= this.version) return true
    if (change.ver !== this.version + 1) {
      this.stale = true
      this.pending.push(change)
      return false
    }
    this.applyOne(change)
    this.version = change.ver
    this.release()
    return true
  }

  markStale (): void { this.stale = true }

  /** Rebuilds from a snapshot taken at `ver`, then replays newer buffered changes. */
  load (ver: number, clients: Array<[string, Array<[string, string]>]>): boolean {
    this.trie = new QlobberSub(QLOBBER_OPTIONS)
    this.byClient = new Map()
    for (const [clientId, subs] of clients) {
      this.applyOne({ ver, c: clientId, op: 'add', ch: subs })
    }
    this.version = ver
    this.stale = false
    const pending = this.pending.sort((a, b) => a.ver - b.ver)
    this.pending = []
    for (const change of pending) {
      if (change.ver <= this.version) continue
      if (change.ver !== this.version + 1) { this.stale = true; this.pending.push(change); return false }
      this.applyOne(change)
      this.version = change.ver
    }
    this.release()
    return true
  }

  private release (): void {
    for (const [ver, resolve] of this.waiters) {
      if (ver <= this.version) { this.waiters.delete(ver); resolve() }
    }
  }

  private applyOne (change: SubscriptionChange): void {
    const clientId = change.c
    let mine = this.byClient.get(clientId)
    if (change.op === 'clean') {
      if (mine) for (const topic of mine.keys()) this.trie.remove(topic, { clientId, topic })
      this.byClient.delete(clientId)
      return
    }
    if (change.op === 'rm') {
      if (!mine) return
      for (const topic of change.ch as string[]) {
        if (mine.delete(topic)) this.trie.remove(topic, { clientId, topic })
      }
      if (mine.size === 0) this.byClient.delete(clientId)
      return
    }
    for (const [topic, json] of change.ch as Array<[string, string]>) {
      const sub = JSON.parse(json) as Omit<StoredSub, 'clientId' | 'topic'>
      if (!mine) { mine = new Map(); this.byClient.set(clientId, mine) }
      if (sub.qos > 0) {
        this.trie.add(topic, { clientId, topic, qos: sub.qos, rh: sub.rh, rap: sub.rap, nl: sub.nl })
        mine.set(topic, sub.qos)
      } else if (mine.delete(topic)) {
        this.trie.remove(topic, { clientId, topic })
      }
    }
    if (mine && mine.size === 0) this.byClient.delete(clientId)
  }
}

const QLOBBER_OPTIONS = { wildcard_one: '+', wildcard_some: '#', separator: '/', match_empty_levels: true }
