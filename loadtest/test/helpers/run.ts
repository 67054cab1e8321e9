// Runs the tool in-process (parse + run) or as a spawned CLI.

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from '../../options.ts'
import { runLoadtest, type RunHooks } from '../../run.ts'
import type { LoadtestResult } from '../../result.ts'

export const BIN = fileURLToPath(new URL('../../../bin/thingmesh-loadtest', import.meta.url))

export async function run(argv: string[], hooks: RunHooks = {}): Promise<LoadtestResult> {
  const parsed = parseArgs(argv)
  if (parsed.kind !== 'run') throw new Error('expected a run')
  return runLoadtest(parsed.config, hooks)
}

export interface CliRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

let lastPid = 0
/** Pid of the most recent runCli child, for signalling it. */
export function lastSpawnedPid(): number {
  return lastPid
}

/** Spawns the bin; `onStdout` can act on output as it arrives (e.g. send SIGINT). */
export function runCli(argv: string[], opts: { onStderr?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    // A plain environment, as an operator's shell has: tap's hooks (NODE_OPTIONS and
    // friends) would load the extensionless ESM bin as CommonJS.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' }
    // Through sh, to drop the NODE_OPTIONS tap's child-process tracking injects.
    const child = spawn('/bin/sh', ['-c', 'unset NODE_OPTIONS; exec "$0" "$@"', BIN, ...argv], { cwd: '/', env, stdio: ['ignore', 'pipe', 'pipe'] })
    lastPid = child.pid ?? 0
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      opts.onStderr?.(stderr, child)
    })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}
