import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { ThingmeshError, type ErrorCode } from '../errors.ts'
import { mayUseClientId, type Principal } from './acl.ts'
import { CredentialCache } from './cache.ts'
import { BoundedWork } from './limiter.ts'
import { DUMMY_HASH, verifyPassword } from './password.ts'
import { FailureThrottle } from './throttle.ts'
import type { UserStore } from './users.ts'

export interface AuthenticatorOptions {
  users: UserStore
  log: Logger
  metrics: Metrics
  /** Explicit --allow-anonymous; undefined applies the secure default. */
  allowAnonymous: boolean | undefined
  /** A standalone node bound to loopback: the only place anonymous is the default. */
  standaloneLoopback: boolean
  failuresPerMinute: number
  cacheTtlMs: number
  concurrency: number
  maxQueued?: number
}

export interface Credentials {
  clientId: string
  username: string | undefined
  password: Buffer | undefined
  /** Remote address, for throttling ('' when unknown). */
  address: string
  /** CN of a client certificate the TLS layer verified against --tls-ca. */
  certName?: string
  /** False once the connection is gone: its queued password check is skipped. */
  stillWanted?: () => boolean
}

class AuthGone extends Error {}

/** A refusal, with the CONNACK return code the client gets. */
export class AuthRefusal extends ThingmeshError {
  constructor (code: ErrorCode, readonly returnCode: number) { super(code) }
}

/**
 * Decides who a CONNECT is. Secure defaults like Mosquitto 2: anonymous only
 * for a standalone node on loopback with no users, unless configured. Unknown
 * users are checked against a dummy hash so timing reveals nothing; verified
 * passwords are cached (cache.ts); hash work is bounded (limiter.ts); failures
 * are throttled per address (throttle.ts).
 */
export class Authenticator {
  readonly cache: CredentialCache
  private readonly work: BoundedWork
  private readonly throttle: FailureThrottle
  /**
   * Checks in flight, by cache key: a storm of clients sharing credentials
   * (a fleet of apps, a reconnecting node's worth) costs one scrypt per
   * distinct password, not one per connection.
   */
  private readonly inFlight = new Map<string, Promise<boolean>>()

  constructor (private readonly opts: AuthenticatorOptions) {
    this.cache = new CredentialCache(opts.cacheTtlMs)
    this.work = new BoundedWork(opts.concurrency, opts.maxQueued ?? 5000)
    this.throttle = new FailureThrottle(opts.failuresPerMinute)
  }

  anonymousAllowed (): boolean {
    if (this.opts.allowAnonymous !== undefined) return this.opts.allowAnonymous
    return this.opts.standaloneLoopback && this.opts.users.countSync() === 0
  }

  async authenticate (c: Credentials): Promise<Principal> {
    const principal = await this.identify(c)
    if (!mayUseClientId(principal, c.clientId)) this.refuse('client_id', 'AUTH_CLIENT_ID_FORBIDDEN', 2, c)
    return principal
  }

  private async identify (c: Credentials): Promise<Principal> {
    const { metrics } = this.opts
    if (c.address && this.throttle.blocked(c.address)) this.refuse('throttled', 'AUTH_THROTTLED', 5, c)

    if (c.certName !== undefined) {
      if (c.username && c.username !== c.certName) this.fail('cert_mismatch', 'AUTH_CERT_MISMATCH', 4, c)
      const user = await this.lookup(c.certName, c)
      if (!user) this.fail('bad_credentials', 'AUTH_BAD_CREDENTIALS', 4, c)
      metrics.auth.inc({ result: 'ok_cert' })
      return { username: user.username, role: user.role, clientId: c.clientId }
    }

    if (!c.username) {
      // [MQTT-3.1.2-22] a password without a user name is refused too.
      if (c.password === undefined && this.anonymousAllowed()) {
        metrics.auth.inc({ result: 'anonymous' })
        return { username: null, role: 'anonymous', clientId: c.clientId }
      }
      this.refuse('required', 'AUTH_REQUIRED', 5, c)
    }

    const password = c.password ?? Buffer.alloc(0)
    const user = await this.lookup(c.username, c)
    if (user && this.cache.has(user.username, password, user.hash)) {
      metrics.auth.inc({ result: 'ok_cached' })
      return { username: user.username, role: user.role, clientId: c.clientId }
    }
    let ok: boolean
    let shared = false
    try {
      metrics.authQueue.set(this.work.queued)
      ;({ ok, shared } = await this.verify(user?.username ?? null, password, user?.hash ?? DUMMY_HASH, c.stillWanted))
    } catch (err) {
      if ((err as ThingmeshError).code === 'AUTH_BUSY') this.refuse('busy', 'AUTH_BUSY', 3, c)
      if (err instanceof AuthGone) this.refuse('gone', 'AUTH_BAD_CREDENTIALS', 4, c)
      throw err
    } finally {
      metrics.authQueue.set(this.work.queued)
    }
    if (!ok || !user) this.fail('bad_credentials', 'AUTH_BAD_CREDENTIALS', 4, c)
    this.cache.add(user.username, password, user.hash)
    // ok_shared: this client joined a check another connection had started (no scrypt of its own).
    metrics.auth.inc({ result: shared ? 'ok_shared' : 'ok_hashed' })
    return { username: user.username, role: user.role, clientId: c.clientId }
  }

  private async verify (username: string | null, password: Buffer, hash: string, stillWanted?: () => boolean): Promise<{ ok: boolean, shared: boolean }> {
    const run = (): Promise<boolean> => this.work.run(async () => {
      // Queued behind a storm, the client may have given up: skip its hash.
      if (stillWanted && !stillWanted()) throw new AuthGone()
      return verifyPassword(password.toString('utf8'), hash)
    })
    // Unknown users are never shared: each costs its own dummy hash, like a real one.
    if (username === null || stillWanted === undefined) return { ok: await run(), shared: false }
    const key = this.cache.keyOf(username, password, hash)
    let p = this.inFlight.get(key)
    const shared = p !== undefined
    if (!p) {
      // A shared check must not be dropped because its first client left.
      p = this.work.run(() => verifyPassword(password.toString('utf8'), hash)).finally(() => this.inFlight.delete(key))
      this.inFlight.set(key, p)
    }
    return { ok: await p, shared }
  }

  private async lookup (username: string, c: Credentials) {
    try {
      return await this.opts.users.get(username)
    } catch (err) {
      this.opts.log.warn({ event: 'auth.lookup_failed', err: (err as Error).message }, 'could not read the user record')
      this.refuse('unavailable', 'BROKER_REDIS_UNAVAILABLE', 3, c)
    }
  }

  /** A failed login: counts towards the address's throttle. */
  private fail (result: string, code: ErrorCode, returnCode: number, c: Credentials): never {
    if (c.address) this.throttle.fail(c.address)
    this.refuse(result, code, returnCode, c)
  }

  private refuse (result: string, code: ErrorCode, returnCode: number, c: Credentials): never {
    this.opts.metrics.auth.inc({ result })
    // The user name is logged truncated: a 64 KiB name must not flood the log.
    this.opts.log.info({ event: 'auth.refused', code, clientId: c.clientId.slice(0, 128), username: c.username?.slice(0, 128), remote: c.address }, 'connection refused by authentication')
    throw new AuthRefusal(code, returnCode)
  }
}
