import { readFileSync, readdirSync } from 'node:fs'
import type { Redis } from 'ioredis'

/**
 * Loads every Lua script next to this file as an ioredis command. The file
 * name says the key count (`name-N.lua`); scripts without one take a variable
 * number of keys, passed first.
 */
export function defineScripts (redis: Redis, dir: URL): void {
  for (const file of readdirSync(dir)) {
    const m = /^([A-Za-z]+)(?:-(\d+))?\.lua$/.exec(file)
    if (!m) continue
    const lua = readFileSync(new URL(file, dir), 'utf8')
    redis.defineCommand(m[1], m[2] === undefined ? { lua } : { lua, numberOfKeys: Number(m[2]) })
  }
}
