import t from 'tap'
import { Authenticator, MemoryUserStore, hashPassword } from '../../broker/auth/index.ts'
import { createMetrics } from '../../broker/metrics.ts'
import { createLogger } from '../../broker/log.ts'

// A reconnect storm costs one scrypt per distinct credential: the rest of the
// connections join the check in flight (ok_shared) or hit the cache (ok_cached).
t.test('concurrent checks of one credential share one scrypt; unknown users never share', async (t) => {
  const users = new MemoryUserStore()
  // A cheap hash (N=2^10): the test is about counting, not cost.
  await users.put({ v: 1, username: 'fleet', role: 'app', hash: await hashPassword('pw', { logN: 10, r: 8, p: 1 }), createdAt: 0, updatedAt: 0 })
  const metrics = createMetrics()
  const auth = new Authenticator({ users, log: createLogger('silent'), metrics, allowAnonymous: false, standaloneLoopback: false, failuresPerMinute: 1000, cacheTtlMs: 60_000, concurrency: 1 })
  const creds = (i: number, username = 'fleet', password = 'pw') => ({ clientId: `c${i}`, username, password: Buffer.from(password), address: '10.0.0.1', stillWanted: () => true })
  const counts = async (): Promise<Record<string, number>> => Object.fromEntries((await metrics.auth.get()).values.map((v) => [String(v.labels.result), v.value]))

  const got = await Promise.all(Array.from({ length: 5 }, (_v, i) => auth.authenticate(creds(i))))
  t.same(got.map((p) => p.username), ['fleet', 'fleet', 'fleet', 'fleet', 'fleet'])
  t.same(await counts(), { ok_hashed: 1, ok_shared: 4 }, 'one scrypt for five connections')
  await auth.authenticate(creds(5))
  t.equal((await counts()).ok_cached, 1, 'then the cache answers')

  const unknown = await Promise.allSettled([auth.authenticate(creds(6, 'ghost')), auth.authenticate(creds(7, 'ghost'))])
  t.same(unknown.map((r) => r.status), ['rejected', 'rejected'])
  t.equal((await counts()).bad_credentials, 2, 'each unknown-user attempt is refused on its own dummy hash')
  const wrong = await Promise.allSettled([auth.authenticate(creds(8, 'fleet', 'nope')), auth.authenticate(creds(9, 'fleet', 'nope'))])
  t.same(wrong.map((r) => r.status), ['rejected', 'rejected'], 'a shared wrong password fails for everyone who shares it')
})
