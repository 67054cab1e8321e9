import { readFileSync } from 'node:fs'
import type { Redis } from 'ioredis'
import { createKeys } from '../../broker/cluster/keys.ts'
import { connectRedis, defineScripts } from '../../broker/cluster/redis.ts'
import { createLogger } from '../../broker/log.ts'
import { isEngineError, validateModuleText, type Problem } from '../../engine/index.ts'
import { ENGINE_LUA_DIR, RedisStore } from '../../engine/runtime/index.ts'
import { DefinitionsSync } from '../../engine/runtime/definitions-sync.ts'

export interface ImportOptions {
  redis?: string
  cluster: string
  dryRun: boolean
  partitions: number
  rolloutTimeoutMs: number
  /** A node not heard from for this long is not waited for. */
  deadAfterMs: number
}

/** Exit codes: 0 applied everywhere (or valid, for a dry run); 1 invalid; 3 stored but not confirmed by every live node. */
export async function runImport (file: string, o: ImportOptions, out: (line: string) => void): Promise<number> {
  let text: string
  try { text = readFileSync(file, 'utf8') } catch (err) { out(`cannot read ${file}: ${(err as Error).message}`); return 1 }

  if (o.redis === undefined) {
    // Without a cluster the bundle is checked on its own (templates it extends must be in it).
    const v = validateModuleText(text)
    if (!v.ok) { printProblems(v.problems, out); return 1 }
    out(`${file}: valid (${v.changes.length} definitions)`)
    return 0
  }

  const keys = createKeys(o.cluster)
  // The node's own connection settings (sentinel URLs, timeouts), quiet logs.
  const log = createLogger('silent')
  const mk = (name: string, subscriber: boolean): Redis => connectRedis({ url: o.redis as string, name, commandTimeoutMs: 5000, log, subscriber })
  const cmd = mk('thingmesh:import', false)
  const sub = mk('thingmesh:import-sub', true)
  defineScripts(cmd, ENGINE_LUA_DIR)
  const ready = (r: Redis): Promise<unknown> => r.status === 'ready' ? Promise.resolve() : new Promise((resolve, reject) => {
    r.once('ready', resolve)
    setTimeout(() => reject(new Error(`cannot reach Redis at ${o.redis as string}`)), 5000).unref()
  })
  const store = new RedisStore({ cmd, reader: cmd, sub, keys: keys.engine, partitions: o.partitions, backlogMax: 1, historyMax: 1, historyMaxAgeMs: 0, leaseMs: 1 })
  let live: string[] = []
  const sync = new DefinitionsSync({
    store, brokerId: 'import-cli', observer: true, log,
    liveNodes: () => live, rolloutTimeoutMs: o.rolloutTimeoutMs, onChange: () => {},
  })
  try {
    await Promise.all([ready(cmd), ready(sub)])
    await store.subscribe()
    await sync.catchUp()
    const v = validateModuleText(text, sync.defs)
    if (!v.ok) { printProblems(v.problems, out); return 1 }
    if (o.dryRun) { out(`${file}: valid on top of version ${sync.defs.version} (${v.changes.length} definitions); nothing applied (--dry-run)`); return 0 }
    // Live nodes by membership heartbeat (Redis server time), as the cluster itself counts them.
    const [secs, micros] = await cmd.time()
    const now = Number(secs) * 1000 + Math.floor(Number(micros) / 1000)
    live = await cmd.zrangebyscore(keys.alive, now - o.deadAfterMs, '+inf')
    const report = await sync.change(v.changes, (current) => {
      const again = current === sync.defs && current.version === v.definitions.version - 1 ? v : validateModuleText(text, current)
      if (!again.ok) throw Object.assign(new Error('module no longer valid on top of the current definitions'), { problems: again.problems })
      return again.definitions
    })
    out(`version ${report.version} applied by ${report.appliedBy.length} node(s): ${report.appliedBy.join(', ') || '-'}`)
    if (report.missing.length > 0) {
      out(`not confirmed within ${o.rolloutTimeoutMs} ms by: ${report.missing.join(', ')}`)
      return 3
    }
    return 0
  } catch (err) {
    const problems = (err as { problems?: Problem[] }).problems
    if (problems !== undefined) { printProblems(problems, out); return 1 }
    if (isEngineError(err)) { out(`${err.message} [${err.code}]`); return 1 }
    throw err
  } finally {
    sub.disconnect()
    cmd.disconnect()
  }
}

function printProblems (problems: readonly Problem[], out: (line: string) => void): void {
  for (const p of problems) out(`${p.path === '' ? '(bundle)' : p.path}: ${p.message} [${p.code}]`)
  out(`${problems.length} problem(s); nothing applied`)
}
