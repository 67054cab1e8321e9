// Every process the harness spawns is registered here and killed if the
// harness itself is stopped (Ctrl-C, or tap's per-file timeout sending
// SIGTERM), so an interrupted campaign leaves no nodes or Redis behind.
import type { ChildProcess } from 'node:child_process'

const live = new Set<ChildProcess>()
let installed = false

function killAll (): void {
  for (const p of live) {
    try { if (p.pid) { process.kill(p.pid, 'SIGCONT'); process.kill(p.pid, 'SIGKILL') } } catch { /* already gone */ }
  }
  live.clear()
}

export function track (p: ChildProcess): ChildProcess {
  live.add(p)
  p.once('exit', () => live.delete(p))
  if (!installed) {
    installed = true
    process.once('exit', killAll)
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
      process.once(sig, () => { killAll(); process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGHUP' ? 1 : 15)) })
    }
  }
  return p
}
