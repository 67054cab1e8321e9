import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'
import type { Keys } from './keys.ts'
import type { Logger } from '../log.ts'

export interface MemberInfo {
  v: 1
  nodeId: string
  brokerId: string
  host: string
  port: number
  httpPort: number
  /** The node's cluster link listener (cluster/links/); absent when links are off or from older releases. */
  link?: { host: string, port: number }
  startedAt: number
  load: Record<string, number>
}

export interface Member extends MemberInfo {
  lastBeat: number
}

interface Scripted {
  heartbeat(...args: string[]): Promise<[number, number, string[], string[]]>
  leave(...args: string[]): Promise<number>
}

export interface MembershipOptions {
  redis: Redis
  keys: Keys
  log: Logger
  self: Omit<MemberInfo, 'v' | 'load'>
  heartbeatMs: number
  deadAfterMs: number
  load: () => Record<string, number>
}

/**
 * Cluster membership by heartbeat in Redis. Each beat renews this node,
 * declares dead every node silent for `deadAfterMs` (once, atomically, by
 * whichever survivor beats first) and returns the live member list.
 *
 * A node reaps only after its own heartbeats have succeeded without a break
 * for `deadAfterMs`. When Redis fails over or is unreachable, every node's
 * beats stop at once; the first node back would otherwise find all its peers
 * silent and declare them dead (their wills published, the nodes fenced)
 * although they were only waiting for Redis like itself. The script adds the
 * same rule in Redis time (a beat executed late, after a paused primary
 * resumes, does not reap).
 *
 * Events: 'members' (Member[]) after every beat; 'dead' (brokerId[]) for nodes
 * this beat reaped; 'fenced' (once) when this node finds it was itself
 * declared dead (it was paused or cut off): its clients' wills are published
 * by the survivors, so this incarnation must stop writing and drop its
 * clients; it stops beating for good (the node may come back as a new
 * incarnation, with a new Membership); 'beatFailed' (Error) when Redis could
 * not be reached.
 */
export class Membership extends EventEmitter {
  members: Member[] = []
  lastBeatOk = 0
  /** Since when (local ms) our beats have succeeded without a failure or reconnect in between; null = not now. */
  private okSince: number | null = null
  private timer: NodeJS.Timeout | null = null
  private beating: Promise<void> | null = null
  /** Declared dead by the cluster: this incarnation never beats or leaves again. */
  fenced = false
  private readonly r: Scripted

  constructor (private readonly opts: MembershipOptions) {
    super()
    this.r = opts.redis as unknown as Scripted
    opts.redis.on('close', () => { this.okSince = null })
    // After a cut, beat at once instead of up to heartbeatMs later: if we were
    // declared dead meanwhile, the sooner we know, the fewer writes this
    // incarnation makes with an identity the cluster has buried.
    opts.redis.on('ready', () => { if (this.timer !== null) void this.beat() })
  }

  /** Whether this node's own view is trusted to declare others dead. */
  get mayReap (): boolean {
    return this.okSince !== null && Date.now() - this.okSince >= this.opts.deadAfterMs
  }

  get size (): number { return this.members.length }

  isAlive (brokerId: string): boolean {
    return this.members.some((m) => m.brokerId === brokerId)
  }

  async start (): Promise<void> {
    await this.beat()
    this.timer = setInterval(() => { void this.beat() }, this.opts.heartbeatMs)
    this.timer.unref()
  }

  /** One heartbeat; a caller during a beat in flight waits for that one. After it, `fenced` is known. */
  beat (): Promise<void> {
    if (this.fenced) return Promise.resolve()
    this.beating ??= this.beatOnce().finally(() => { this.beating = null })
    return this.beating
  }

  private async beatOnce (): Promise<void> {
    const { keys, self } = this.opts
    try {
      const info: MemberInfo = { v: 1, ...self, load: this.opts.load() }
      const [now, fenced, flat, reaped] = await this.r.heartbeat(
        keys.alive, keys.nodes, keys.dead, keys.gone, self.brokerId, JSON.stringify(info), String(this.opts.deadAfterMs), this.mayReap ? '1' : '0')
      this.okSince ??= Date.now()
      if (fenced === 1) {
        this.fenced = true
        if (this.timer) clearInterval(this.timer)
        this.timer = null
        this.opts.log.error({ event: 'cluster.fenced', brokerId: self.brokerId }, 'this node was declared dead while unreachable; dropping its clients')
        this.emit('fenced')
        return
      }
      const members: Member[] = []
      for (let i = 0; i < flat.length; i += 2) {
        try {
          const m = JSON.parse(flat[i + 1]) as MemberInfo
          members.push({ ...m, brokerId: flat[i], lastBeat: now })
        } catch { /* a member record from an incompatible release: skip it */ }
      }
      this.members = members
      this.lastBeatOk = Date.now()
      if (reaped.length > 0) {
        this.opts.log.warn({ event: 'cluster.node_dead', brokerIds: reaped }, 'nodes declared dead')
        this.emit('dead', reaped)
      }
      this.emit('members', members)
    } catch (err) {
      this.okSince = null
      this.emit('beatFailed', err)
    }
  }

  /** Dead brokers whose wills may still be unpublished (reaped by anyone, ever). */
  async pendingDead (): Promise<string[]> {
    return this.opts.redis.smembers(this.opts.keys.dead)
  }

  async forgetDead (brokerId: string): Promise<void> {
    await this.opts.redis.srem(this.opts.keys.dead, brokerId)
  }

  async stop (): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
    // A fenced incarnation is no member: leaving would be a write in its name.
    if (this.fenced) return
    const { keys, self } = this.opts
    try {
      await this.r.leave(keys.alive, keys.nodes, keys.willsOf(self.brokerId), self.brokerId)
    } catch { /* Redis away: the others will reap us after deadAfterMs */ }
  }
}
