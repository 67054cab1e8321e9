/**
 * Processes a test started (redis-server, sentinels, broker nodes) die with it.
 *
 * A test file that tap times out, or that throws before its teardown, would
 * otherwise leave its children running with parent PID 1; on a 2-core box a
 * handful of orphaned nodes and Redis servers is enough to make every later
 * test slow. signal-exit runs the hook on normal exit, on an uncaught error
 * and on the signals tap uses (SIGALRM on timeout, SIGTERM, SIGINT). Only a
 * SIGKILL of the test process itself escapes it.
 */
import type { ChildProcess } from 'node:child_process'
import { onExit } from 'signal-exit'

const live = new Set<ChildProcess>()
let hooked = false

/** Register a child to be SIGKILLed (after SIGCONT, in case a test stopped it) when this process exits. */
export function killWithTest (proc: ChildProcess): ChildProcess {
  if (!hooked) {
    hooked = true
    onExit(() => {
      for (const p of live) {
        try { p.kill('SIGCONT'); p.kill('SIGKILL') } catch { /* already gone */ }
      }
    })
  }
  live.add(proc)
  proc.once('exit', () => live.delete(proc))
  return proc
}
