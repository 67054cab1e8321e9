// Worker-thread side of shard-handle.ts: runs one Shard and answers calls.

import { parentPort, workerData } from 'node:worker_threads'
import type { LoadtestConfig } from './config.ts'
import type { ShardPlan } from './plan.ts'
import { localShard, type WorkerRequest, type WorkerResponse } from './shard-handle.ts'

const { config, plan } = workerData as { config: LoadtestConfig; plan: ShardPlan }
const shard = localShard(config, plan)
const port = parentPort!

port.on('message', (req: WorkerRequest) => {
  const fn = shard[req.method] as (...args: unknown[]) => Promise<unknown>
  fn(...req.args).then(
    (value) => port.postMessage({ id: req.id, ok: true, value: value ?? null } satisfies WorkerResponse),
    (err: unknown) => port.postMessage({ id: req.id, ok: false, error: err instanceof Error ? err.message : String(err) } satisfies WorkerResponse),
  )
})
