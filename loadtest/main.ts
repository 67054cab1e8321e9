// runLoadtestCli: argv in, exit code out. Shared by bin/thingmesh-loadtest
// and `thingmesh loadtest`. The only place that writes to the terminal.

import { writeFile } from 'node:fs/promises'
import { LoadtestError } from './errors.ts'
import { parseArgs } from './options.ts'
import { renderHtmlReport } from './report-html.ts'
import { liveLine, summaryTable } from './render.ts'
import { runLoadtest } from './run.ts'
import { usesSubscribers } from './options.ts'

export interface CliIo {
  readonly stdout: NodeJS.WritableStream
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean }
  /** Receives SIGINT/SIGTERM; default: the process. */
  readonly signals?: Pick<NodeJS.Process, 'on' | 'off'>
}

export async function runLoadtestCli(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const err = (line: string): void => {
    io.stderr.write(`thingmesh loadtest: ${line}\n`)
  }
  let parsed
  try {
    parsed = parseArgs(argv, { isTTY: io.stderr.isTTY === true })
  } catch (e) {
    if (e instanceof LoadtestError) {
      err(`${e.message} (try --help)`)
      return e.exitCode
    }
    throw e
  }
  if (parsed.kind === 'help') {
    io.stdout.write(parsed.text)
    return 0
  }
  const config = parsed.config
  const abort = new AbortController()
  const signals = io.signals ?? process
  let interrupts = 0
  const onSignal = (): void => {
    interrupts++
    // A second Ctrl-C means "now": skip the drain and summary.
    if (interrupts > 1) process.exit(130)
    abort.abort()
  }
  signals.on('SIGINT', onSignal)
  signals.on('SIGTERM', onSignal)
  const total = config.clients + (usesSubscribers(config.scenario) ? config.subscribers : 0)
  let lastLen = 0
  try {
    const result = await runLoadtest(config, {
      signal: abort.signal,
      onSample: config.live
        ? (p) => {
            const line = liveLine(p, total)
            io.stderr.write(`\r${line.padEnd(lastLen)}`)
            lastLen = line.length
          }
        : undefined,
    })
    if (config.live && lastLen > 0) io.stderr.write('\n')
    io.stdout.write(config.json ? `${JSON.stringify(result, null, 2)}\n` : summaryTable(result))
    if (config.reportPath !== null) {
      await writeFile(config.reportPath, renderHtmlReport(result))
      if (!config.json) io.stdout.write(`report written to ${config.reportPath}\n`)
    }
    if (result.interrupted) return 130
    if (config.failOnLoss && result.loss.lost > 0) return 1
    return 0
  } catch (e) {
    if (config.live && lastLen > 0) io.stderr.write('\n')
    if (e instanceof LoadtestError) {
      err(e.message)
      return e.exitCode
    }
    err(`internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`)
    return 1
  } finally {
    signals.off('SIGINT', onSignal)
    signals.off('SIGTERM', onSignal)
  }
}
