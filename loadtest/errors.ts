// Every error the load-test tool raises on purpose, with a stable code.
// The CLI maps BAD_OPTION and UNREACHABLE to exit code 2 and prints the
// message on one line; anything else is an internal failure (exit 1).

export const LoadtestErrorCodes = {
  LOADTEST_BAD_OPTION: 'one or more command-line options are invalid',
  LOADTEST_UNREACHABLE: "a broker could not be reached or refused the connection",
  LOADTEST_CREATE_FAILED: 'creating things through the admin topics failed',
  LOADTEST_WORKER_FAILED: 'a worker thread failed',
} as const

export type LoadtestErrorCode = keyof typeof LoadtestErrorCodes

export class LoadtestError extends Error {
  readonly code: LoadtestErrorCode
  /** Every individual problem, so option errors can be reported together. */
  readonly problems: readonly string[]

  constructor(code: LoadtestErrorCode, message: string, problems: readonly string[] = [message]) {
    super(message)
    this.name = 'LoadtestError'
    this.code = code
    this.problems = problems
  }

  /** Exit code the CLI returns for this error. */
  get exitCode(): number {
    return this.code === 'LOADTEST_BAD_OPTION' || this.code === 'LOADTEST_UNREACHABLE' ? 2 : 1
  }
}
