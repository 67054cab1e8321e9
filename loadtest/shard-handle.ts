// The coordinator's view of a shard, in this thread or in a worker thread.

import { Worker } from 'node:worker_threads'
import type { LoadtestConfig } from './config.ts'
import { LoadtestError } from './errors.ts'
import type { ShardPlan } from './plan.ts'
import { Shard, type ConnectReport, type ShardReport, type ShardSample } from './shard.ts'

export interface ShardHandle {
  connect(): Promise<ConnectReport>
  connectReport(): Promise<ConnectReport>
  startPublishing(): Promise<void>
  whenDone(): Promise<void>
  sample(): Promise<ShardSample>
  stopPublishing(): Promise<Record<string, number>>
  drain(expected: Record<string, Record<string, number>> | null, timeoutMs: number): Promise<void>
  report(): Promise<ShardReport>
  close(): Promise<void>
}

export type ShardMethod = keyof ShardHandle

export function localShard(config: LoadtestConfig, plan: ShardPlan): ShardHandle {
  const s = new Shard(config, plan)
  return {
    connect: () => s.connect(),
    connectReport: async () => s.connectReport(),
    startPublishing: async () => s.startPublishing(),
    whenDone: () => s.whenDone(),
    sample: async () => s.sample(),
    stopPublishing: async () => s.stopPublishing(),
    drain: (e, t) => s.drain(e, t),
    report: async () => s.report(),
    close: () => s.close(),
  }
}

export interface WorkerRequest {
  readonly id: number
  readonly method: ShardMethod
  readonly args: unknown[]
}

export type WorkerResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string }

export function workerShard(config: LoadtestConfig, plan: ShardPlan): ShardHandle {
  // The entry is plain JS that registers tsx first: worker threads do not
  // inherit the loader hooks the main thread registered.
  const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: { config, plan } })
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  let nextId = 1
  let dead: Error | null = null
  const failAll = (err: Error): void => {
    dead = err
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }
  worker.on('message', (m: WorkerResponse) => {
    const p = pending.get(m.id)
    if (p === undefined) return
    pending.delete(m.id)
    if (m.ok) p.resolve(m.value)
    else p.reject(new LoadtestError('LOADTEST_WORKER_FAILED', `worker ${plan.shard}: ${m.error}`))
  })
  worker.on('error', (err) => failAll(new LoadtestError('LOADTEST_WORKER_FAILED', `worker ${plan.shard}: ${err.message}`)))
  worker.on('exit', (code) => failAll(new LoadtestError('LOADTEST_WORKER_FAILED', `worker ${plan.shard} exited with ${code}`)))
  const call = <T>(method: ShardMethod, ...args: unknown[]): Promise<T> => {
    if (dead !== null) return Promise.reject(dead)
    const id = nextId++
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      worker.postMessage({ id, method, args } satisfies WorkerRequest)
    })
  }
  return {
    connect: () => call('connect'),
    connectReport: () => call('connectReport'),
    startPublishing: () => call('startPublishing'),
    whenDone: () => call('whenDone'),
    sample: () => call('sample'),
    stopPublishing: () => call('stopPublishing'),
    drain: (e, t) => call('drain', e, t),
    report: () => call('report'),
    close: async () => {
      await call('close').catch(() => {})
      await worker.terminate()
    },
  }
}
