import type { Redis } from 'ioredis'
import type { Keys } from '../cluster/keys.ts'
import { ThingmeshError } from '../errors.ts'
import { defineScripts } from '../cluster/redis.ts'

export type Role = 'admin' | 'app' | 'device'
export const ROLES: readonly Role[] = ['admin', 'app', 'device']

/** A stored user. `v` versions the record so two releases can share a Redis. */
export interface UserRecord {
  v: 1
  username: string
  role: Role
  hash: string
  createdAt: number
  updatedAt: number
}

/** What the admin API shows: never the hash. */
export type PublicUser = Omit<UserRecord, 'hash' | 'v'>

export function publicUser (u: UserRecord): PublicUser {
  return { username: u.username, role: u.role, createdAt: u.createdAt, updatedAt: u.updatedAt }
}

/**
 * Usernames: printable, no '/', '+', '#', NUL and no leading '$', because a
 * device's username is its thing id and becomes a topic level in its ACL.
 */
export const USERNAME_RE = /^[A-Za-z0-9_.@:-]{1,128}$/

export function userProblem (username: string, role: string): string | null {
  if (!USERNAME_RE.test(username)) return 'username: use 1-128 letters, digits, _ . @ : or -'
  if (!(ROLES as readonly string[]).includes(role)) return `role: one of ${ROLES.join(', ')}`
  return null
}

export interface UserStore {
  get(username: string): Promise<UserRecord | null>
  list(): Promise<UserRecord[]>
  /** Creates or replaces; refuses (ADMIN_LAST_ADMIN) to demote the last admin. */
  put(user: UserRecord): Promise<{ created: boolean }>
  /** Refuses (ADMIN_LAST_ADMIN) to delete the last admin; false if absent. */
  delete(username: string): Promise<boolean>
  /** Number of users; `undefined` when it cannot be known without I/O. */
  countSync(): number | undefined
  count(): Promise<number>
}

/** Standalone node: users live in memory for the life of the process. */
export class MemoryUserStore implements UserStore {
  private readonly users = new Map<string, UserRecord>()

  async get (username: string): Promise<UserRecord | null> { return this.users.get(username) ?? null }
  async list (): Promise<UserRecord[]> { return [...this.users.values()].sort((a, b) => a.username.localeCompare(b.username)) }
  countSync (): number { return this.users.size }
  async count (): Promise<number> { return this.users.size }

  async put (user: UserRecord): Promise<{ created: boolean }> {
    const prev = this.users.get(user.username)
    if (prev?.role === 'admin' && user.role !== 'admin' && this.admins() === 1) throw new ThingmeshError('ADMIN_LAST_ADMIN')
    this.users.set(user.username, user)
    return { created: prev === undefined }
  }

  async delete (username: string): Promise<boolean> {
    const prev = this.users.get(username)
    if (!prev) return false
    if (prev.role === 'admin' && this.admins() === 1) throw new ThingmeshError('ADMIN_LAST_ADMIN')
    this.users.delete(username)
    return true
  }

  private admins (): number {
    let n = 0
    for (const u of this.users.values()) if (u.role === 'admin') n++
    return n
  }
}

interface Scripted {
  putUser(...args: string[]): Promise<number>
  deleteUser(...args: string[]): Promise<number>
}

/** Cluster: users in one Redis hash; the admin set makes "last admin" atomic (lua/*User-2.lua). */
export class RedisUserStore implements UserStore {
  private readonly r: Scripted
  constructor (private readonly redis: Redis, private readonly keys: Keys) {
    defineScripts(redis, new URL('./lua/', import.meta.url))
    this.r = redis as unknown as Scripted
  }

  async get (username: string): Promise<UserRecord | null> {
    const json = await this.redis.hget(this.keys.users, username)
    return json === null ? null : decode(json)
  }

  async list (): Promise<UserRecord[]> {
    const all = await this.redis.hvals(this.keys.users)
    return all.map(decode).filter((u): u is UserRecord => u !== null).sort((a, b) => a.username.localeCompare(b.username))
  }

  countSync (): undefined { return undefined }
  async count (): Promise<number> { return this.redis.hlen(this.keys.users) }

  async put (user: UserRecord): Promise<{ created: boolean }> {
    const res = await this.r.putUser(this.keys.users, this.keys.admins, user.username, JSON.stringify(user), user.role === 'admin' ? '1' : '0')
    if (res === -1) throw new ThingmeshError('ADMIN_LAST_ADMIN')
    return { created: res === 1 }
  }

  async delete (username: string): Promise<boolean> {
    const res = await this.r.deleteUser(this.keys.users, this.keys.admins, username)
    if (res === -1) throw new ThingmeshError('ADMIN_LAST_ADMIN')
    return res === 1
  }
}

function decode (json: string): UserRecord | null {
  try {
    const u = JSON.parse(json) as UserRecord
    return u.v === 1 && typeof u.hash === 'string' && (ROLES as readonly string[]).includes(u.role) ? u : null
  } catch { return null }
}
