import { spawn, spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'

export interface Child {
  name: string
  pid: number
  logFile: string
  /** Resolves with the exit code (or the signal name) once the process is gone and reaped. */
  exited: Promise<number | string>
  alive(): boolean
  /** The last lines of the child's log, for error messages. */
  tail(lines?: number): string
}

/**
 * Starts and stops the cluster's processes. Each child runs in its own
 * process group (detached), so a Ctrl-C in the terminal reaches only this
 * script, which then stops the children in order: nodes first (they leave the
 * cluster cleanly while Redis is still there), then HAProxy, the Sentinels
 * and Redis. Signals go to the whole group, so nothing a child started
 * survives it. If this script is SIGKILLed, the children outlive it; their
 * pids are printed at start for that case.
 */
export class Supervisor {
  readonly children: Child[] = []
  /** Set by stopAll: a signal during start-up must not race a spawn that would then outlive the stop. */
  private closed = false

  start (name: string, command: string, args: string[], opts: { logFile: string, env?: NodeJS.ProcessEnv, cwd?: string }): Child {
    if (this.closed) throw new Error(`not starting ${name}: stopping`)
    const fd = openSync(opts.logFile, 'a')
    const proc = spawn(command, args, { detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env, cwd: opts.cwd })
    closeSync(fd)
    let gone = false
    const exited = new Promise<number | string>((resolve) => {
      proc.once('exit', (code, signal) => { gone = true; resolve(code ?? signal ?? 'unknown') })
      // A binary that cannot be spawned emits 'error' and no 'exit'.
      proc.once('error', (err) => { gone = true; resolve(`spawn failed: ${err.message}`) })
    })
    const child: Child = {
      name,
      pid: proc.pid ?? -1,
      logFile: opts.logFile,
      exited,
      alive: () => !gone,
      tail: (lines = 20) => existsSync(opts.logFile) ? readFileSync(opts.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '',
    }
    this.children.push(child)
    return child
  }

  /** SIGTERM to the child's process group; SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop (child: Child, graceMs: number): Promise<void> {
    if (!child.alive()) { await child.exited; return }
    signalGroup(child.pid, 'SIGTERM')
    const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), graceMs)
    await child.exited
    clearTimeout(timer)
    // The leader is gone; anything left in its group goes too.
    signalGroup(child.pid, 'SIGKILL')
  }

  /** SIGKILL to every child's process group at once, for a second Ctrl-C. */
  killAll (): void {
    for (const c of this.children) if (c.alive()) signalGroup(c.pid, 'SIGKILL')
  }

  /** Stops children in the order of `groups` (each group in parallel); unlisted children last. */
  async stopAll (groups: Array<{ match: (c: Child) => boolean, graceMs: number }>): Promise<void> {
    this.closed = true
    const left = new Set(this.children)
    for (const g of groups) {
      const batch = [...left].filter(g.match)
      for (const c of batch) left.delete(c)
      await Promise.all(batch.map((c) => this.stop(c, g.graceMs)))
    }
    await Promise.all([...left].map((c) => this.stop(c, 3000)))
  }
}

function signalGroup (pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return
  try { process.kill(-pid, signal) } catch { /* already gone */ }
}

/** Absolute path of an executable on PATH or in the sbin folders (often off a user's PATH), or null. */
export function findBinary (name: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim()
  if (found) return found
  for (const dir of ['/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`
  }
  return null
}
