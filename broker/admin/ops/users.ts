import { z } from 'zod'
import { ThingmeshError } from '../../errors.ts'
import { hashPassword, publicUser, ROLES, USERNAME_RE, type Role } from '../../auth/index.ts'
import { op } from '../operation.ts'

const username = z.string().regex(USERNAME_RE, 'use 1-128 letters, digits, _ . @ : or -')
const password = z.string().min(8, 'at least 8 characters').max(1024)

/** users/*: accounts and roles. Passwords are hashed here and never returned or audited. */
export const userOps = [
  op('users/put', z.strictObject({ username, role: z.enum(ROLES as [Role, ...Role[]]), password: password.optional() }), true, async (ctx, a) => {
    const prev = await ctx.users.get(a.username)
    if (!prev && a.password === undefined) throw new ThingmeshError('AUTH_INVALID_USER', 'a new user needs a password')
    const now = Date.now()
    const hash = a.password === undefined ? prev!.hash : await hashPassword(a.password)
    const rec = { v: 1 as const, username: a.username, role: a.role, hash, createdAt: prev?.createdAt ?? now, updatedAt: now }
    const { created } = await ctx.users.put(rec)
    return { ...publicUser(rec), created }
  }),
  op('users/list', z.strictObject({}), false, async (ctx) => (await ctx.users.list()).map(publicUser)),
  op('users/delete', z.strictObject({ username }), true, async (ctx, a) => {
    if (!(await ctx.users.delete(a.username))) throw new ThingmeshError('ADMIN_NOT_FOUND', `no user '${a.username}'`)
    return { username: a.username, deleted: true }
  }),
]
