/** Polls `predicate` until it returns truthy; rejects with `what` after `timeoutMs`. */
export async function waitFor<T> (predicate: () => T | Promise<T>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await predicate()
      if (v) return v
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

/** Resolves with the first emission of `event`; rejects after `timeoutMs`. */
export function once<T = unknown> (emitter: NodeJS.EventEmitter, event: string, timeoutMs = 10_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { emitter.off(event, on); reject(new Error(`timed out waiting for '${event}'`)) }, timeoutMs)
    const on = (v: T): void => { clearTimeout(timer); resolve(v) }
    emitter.once(event, on)
  })
}
