import { Command, Option } from 'commander'
import { Redis } from 'ioredis'
import { createKeys } from '../../broker/cluster/keys.ts'
import { hashPassword, publicUser, RedisUserStore, ROLES, userProblem, type Role } from '../../broker/auth/index.ts'
import { adminConnect, connectionOptions, type ConnectionOpts } from './admin.ts'
import { render } from './output.ts'

interface UsersOpts extends ConnectionOpts { redis?: string, cluster: string, json?: boolean }

/**
 * `thingmesh users add|list|delete`: through the admin topics (--url, an admin
 * login), or straight against Redis with --redis, which is how the first admin
 * of a cluster is made.
 */
export function registerUsers (program: Command): void {
  const users = program.command('users').description('manage users (through the admin topics, or directly in Redis with --redis)')
  const common = (c: Command): Command => connectionOptions(c)
    .addOption(new Option('--redis <url>', 'work directly on the cluster\'s Redis (bootstrapping the first admin)').env('THINGMESH_REDIS'))
    .addOption(new Option('--cluster <name>', 'cluster name (Redis key prefix)').env('THINGMESH_CLUSTER').default('thingmesh'))
    .option('--json', 'print JSON')

  common(users.command('add').argument('<username>').description('create or update a user'))
    .addOption(new Option('--role <role>', 'admin, app or device (a device\'s username is its thing id)').choices([...ROLES]).makeOptionMandatory())
    .addOption(new Option('--new-password <password>', 'the user\'s password (at least 8 characters; prefer the environment variable)').env('THINGMESH_NEW_PASSWORD'))
    .action(async (username: string, o: UsersOpts & { role: Role, newPassword?: string }) => {
      const problem = userProblem(username, o.role)
      if (problem) fail(problem, 2)
      if (o.newPassword !== undefined && o.newPassword.length < 8) fail('--new-password: at least 8 characters', 2)
      await withStore(o, async (store) => {
        const prev = await store.get(username)
        if (!prev && o.newPassword === undefined) fail('a new user needs --new-password (or THINGMESH_NEW_PASSWORD)', 2)
        const now = Date.now()
        const rec = { v: 1 as const, username, role: o.role, hash: o.newPassword ? await hashPassword(o.newPassword) : prev!.hash, createdAt: prev?.createdAt ?? now, updatedAt: now }
        const { created } = await store.put(rec)
        return { ...publicUser(rec), created }
      }, (c) => c.call('users/put', { username, role: o.role, password: o.newPassword }))
    })

  common(users.command('list').description('list users')).action(async (o: UsersOpts) => {
    await withStore(o, async (store) => (await store.list()).map(publicUser), (c) => c.call('users/list'))
  })

  common(users.command('delete').argument('<username>').description('delete a user (never the last admin)')).action(async (username: string, o: UsersOpts) => {
    await withStore(o, async (store) => {
      if (!(await store.delete(username))) fail(`no user '${username}'`, 1)
      return { username, deleted: true }
    }, (c) => c.call('users/delete', { username }))
  })
}

async function withStore (o: UsersOpts, direct: (s: RedisUserStore) => Promise<unknown>, viaAdmin: (c: Awaited<ReturnType<typeof adminConnect>>) => Promise<unknown>): Promise<void> {
  let result: unknown
  try {
    if (o.redis) {
      const redis = new Redis(o.redis, { maxRetriesPerRequest: 1, lazyConnect: true })
      redis.on('error', () => {})
      try {
        await redis.connect()
        result = await direct(new RedisUserStore(redis, createKeys(o.cluster)))
      } finally { redis.disconnect() }
    } else {
      const client = await adminConnect(o)
      try { result = await viaAdmin(client) } finally { await client.close() }
    }
  } catch (err) {
    const e = err as Error & { code?: string }
    fail(e.code && !e.message.includes(e.code) ? `${e.message} [${e.code}]` : e.message, 1)
  }
  process.stdout.write((o.json ? JSON.stringify(result, null, 2) : render(result)) + '\n')
}

function fail (message: string, code: number): never {
  process.stderr.write(`thingmesh users: ${message}\n`)
  process.exit(code)
}
