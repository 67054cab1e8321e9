import { createServer } from 'node:net'
import type { Child } from './supervisor.ts'

/**
 * Polls `check` until it returns truthy. Fails after `timeoutMs`, or at once
 * when one of `watch` exits (a crashed child will never become ready).
 */
export async function waitFor<T> (what: string, check: () => Promise<T> | T, opts: { timeoutMs?: number, everyMs?: number, watch?: Child[] } = {}): Promise<T> {
  const { timeoutMs = 20_000, everyMs = 100, watch = [] } = opts
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    const dead = watch.find((c) => !c.alive())
    if (dead) throw new StartError(`${dead.name} exited while waiting for ${what}`, dead)
    try {
      const v = await check()
      if (v) return v
    } catch (err) { last = err }
    if (Date.now() > deadline) {
      throw new StartError(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/** A start-up failure, naming the child whose log explains it. */
export class StartError extends Error {
  constructor (message: string, readonly child?: Child) { super(message) }
}

/** A port free on 127.0.0.1 right now. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

/** GET a loopback URL; the status and body, or null when nothing answers. */
export async function httpGet (url: string): Promise<{ status: number, body: string } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) })
    return { status: res.status, body: await res.text() }
  } catch {
    return null
  }
}
