// Starts a real mosquitto on a free 127.0.0.1 port for the tool's tests.
// Readiness is the broker's own "running" log line, not a sleep.

import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const MOSQUITTO = '/usr/sbin/mosquitto'

export interface Mosquitto {
  readonly port: number
  readonly url: string
  readonly confPath: string
  readonly pidFile: string
  /** The pid of the broker now running (it changes if a test restarts it). */
  pid(): number
  stop(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))))
    })
  })
}

export interface MosquittoOptions {
  /** Extra lines for the listener (certfile, keyfile, ...) given the broker's directory. */
  readonly listener?: (dir: string) => string[]
  /** Extra global config lines. */
  readonly global?: string[]
  /** Require a login: password_file <dir>/passwd instead of allow_anonymous. */
  readonly noAnonymous?: boolean
  /** The listener speaks TLS (the URL becomes mqtts://). */
  readonly tls?: boolean
  /** Called with the directory before start (e.g. to write certificates). */
  readonly prepare?: (dir: string) => void
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tmlt-mosq-'))
  opts.prepare?.(dir)
  // Run as root, mosquitto drops to its own user before writing the pid file.
  chmodSync(dir, 0o777)
  const confPath = join(dir, 'mosquitto.conf')
  const pidFile = join(dir, 'mosquitto.pid')
  writeFileSync(
    confPath,
    [
      ...(opts.global ?? []),
      `listener ${port} 127.0.0.1`,
      ...(opts.listener?.(dir) ?? []),
      ...(opts.noAnonymous === true ? ['allow_anonymous false', `password_file ${join(dir, 'passwd')}`] : ['allow_anonymous true']),
      'persistence false',
      `pid_file ${pidFile}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      'max_queued_messages 100000',
      '',
    ].join('\n'),
  )
  const child = spawn(MOSQUITTO, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'] })
  await waitForRunning(child)
  const url = `${opts.tls === true ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`
  return {
    port,
    url,
    confPath,
    pidFile,
    pid: () => Number(readFileSync(pidFile, 'utf8').trim()),
    stop: async () => {
      // The broker may have been replaced by a test (failover): stop whatever the pid file names.
      let pid: number | null = null
      try {
        pid = Number(readFileSync(pidFile, 'utf8').trim())
      } catch {
        pid = null
      }
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        child.kill('SIGTERM')
        await exited
      }
      if (pid !== null && pid !== child.pid) {
        try {
          process.kill(pid, 'SIGTERM')
        } catch {
          // already gone
        }
      }
    },
  }
}

function waitForRunning(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = ''
    const onData = (d: Buffer): void => {
      log += d.toString()
      if (/running/.test(log)) {
        child.stderr!.off('data', onData)
        child.stderr!.resume()
        resolve()
      }
    }
    child.stderr!.on('data', onData)
    child.once('exit', (code) => reject(new Error(`mosquitto exited with ${code}: ${log}`)))
    child.once('error', reject)
  })
}
