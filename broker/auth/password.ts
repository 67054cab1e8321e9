import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

/**
 * Password hashing with scrypt (node:crypto). Parameters follow OWASP's
 * scrypt row "N=2^15, r=8, p=3" (as strong as N=2^17, p=1 with a quarter of
 * the memory), with a 16-byte random salt per user. The parameters are stored
 * in the hash string, so raising the cost later leaves old hashes verifiable:
 *
 *   scrypt$<log2 N>$<r>$<p>$<salt base64>$<key base64>
 */
export interface ScryptParams { logN: number, r: number, p: number }

export const DEFAULT_SCRYPT: ScryptParams = { logN: 15, r: 8, p: 3 }
const KEY_LEN = 32
const SALT_LEN = 16

function derive (password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN
  // scrypt needs 128 * N * r bytes; Node refuses above 32 MiB unless told.
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 256 * N * params.r + 1024 * 1024 }
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_LEN, opts, (err, key) => err ? reject(err) : resolve(key))
  })
}

export async function hashPassword (password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LEN)
  const key = await derive(password, salt, params)
  return `scrypt$${params.logN}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

export function parseHash (hash: string): { params: ScryptParams, salt: Buffer, key: Buffer } | null {
  const m = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash)
  if (!m) return null
  const params = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  if (params.logN < 10 || params.logN > 20 || params.r < 1 || params.p < 1) return null
  return { params, salt: Buffer.from(m[4], 'base64'), key: Buffer.from(m[5], 'base64') }
}

/** Constant-time in the password: the full scrypt always runs and the compare is timingSafeEqual. */
export async function verifyPassword (password: string, hash: string): Promise<boolean> {
  const parsed = parseHash(hash)
  if (!parsed || parsed.key.length !== KEY_LEN) return false
  const key = await derive(password, parsed.salt, parsed.params)
  return timingSafeEqual(key, parsed.key)
}

/**
 * A hash that matches no password, for unknown users: verifying against it
 * costs the same as for a real user, so response time does not reveal which
 * user names exist.
 */
export const DUMMY_HASH = `scrypt$${DEFAULT_SCRYPT.logN}$${DEFAULT_SCRYPT.r}$${DEFAULT_SCRYPT.p}$${randomBytes(SALT_LEN).toString('base64')}$${randomBytes(KEY_LEN).toString('base64')}`
