// Bench options: `--name value`, `--name=value`, or an environment variable, in that order.

export function option (name: string, env: string, dflt: string): string {
  const i = process.argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`))
  if (i < 0) return process.env[env] ?? dflt
  const a = process.argv[i]
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : process.argv[i + 1]
}

/** An integer option of at least `min`; anything else stops the bench with a message naming it. */
export function num (name: string, env: string, dflt: number, min = 1): number {
  const v = Number(option(name, env, String(dflt)))
  if (!Number.isInteger(v) || v < min) throw new Error(`--${name} (${env}) must be an integer ≥ ${min}`)
  return v
}
