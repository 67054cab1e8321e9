import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * Structured logs with stable `event` names, so operators can alert on them.
 * Logs go to stderr: stdout stays free for CLI output.
 */
export function createLogger (level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: bindings, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2))
}
