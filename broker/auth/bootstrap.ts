import type { Logger } from '../log.ts'
import { hashPassword } from './password.ts'
import type { UserStore } from './users.ts'

/**
 * --admin-password / THINGMESH_ADMIN_PASSWORD: creates the first admin if the
 * store has none, and never overwrites an existing user, so restarting a node
 * with the flag cannot reset a password changed since.
 */
export async function ensureFirstAdmin (users: UserStore, username: string, password: string, log: Logger): Promise<void> {
  const all = await users.list()
  if (all.some((u) => u.role === 'admin') || all.some((u) => u.username === username)) return
  const now = Date.now()
  await users.put({ v: 1, username, role: 'admin', hash: await hashPassword(password), createdAt: now, updatedAt: now })
  log.info({ event: 'auth.first_admin_created', username }, 'created the first admin user from --admin-password')
}
