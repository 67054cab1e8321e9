// Creating the fleet's things before the run, through the engine's admin
// topics. The step is a hook so another provisioning path (HTTP, a script)
// can replace it; `--no-create` skips it.
//
// Request, on $admin/things/put (version 1):
//   {"v":1,"requestId":"<id>","replyTo":"$admin/reply/<clientId>","id":"<thingId>","thing":{...}}
// Reply, on $admin/reply/<clientId>:
//   {"requestId":"<id>","ok":true} or {"requestId":"<id>","ok":false,"code":"ADMIN_...","message":"..."}

import mqtt from 'mqtt'
import type { LoadtestConfig } from './config.ts'
import { clientOptions, effectiveUrl, failureReason } from './connection.ts'
import { LoadtestError } from './errors.ts'
import { propertyName } from './plan.ts'

export interface ThingCreateResult {
  readonly created: number
  readonly failed: Record<string, number>
  readonly durationMs: number
}

export type ThingCreator = (config: LoadtestConfig, thingIds: readonly string[]) => Promise<ThingCreateResult>

/** How many requests are outstanding at once. */
const CONCURRENCY = 100

export function thingDefinition(config: LoadtestConfig, thingId: string): Record<string, unknown> {
  const properties: Record<string, unknown> = {}
  for (let i = 0; i < config.properties; i++) properties[propertyName(i)] = { type: 'object' }
  return { title: `loadtest device ${thingId}`, properties }
}

export const adminTopicThingCreator: ThingCreator = async (config, thingIds) => {
  const started = performance.now()
  const clientId = `${config.clientPrefix}-admin`
  const replyTopic = `$admin/reply/${clientId}`
  const client = await mqtt.connectAsync(effectiveUrl(config.urls[0]!, config), {
    ...clientOptions(config, clientId, false),
    clean: true,
  })
  const waiting = new Map<string, (reply: { ok?: unknown; code?: unknown }) => void>()
  client.on('message', (_topic, payload) => {
    let reply: { requestId?: unknown; ok?: unknown; code?: unknown }
    try {
      reply = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (typeof reply.requestId === 'string') waiting.get(reply.requestId)?.(reply)
  })
  const failed: Record<string, number> = {}
  let created = 0
  try {
    await client.subscribeAsync(replyTopic, { qos: 1 })
    let next = 0
    const one = async (thingId: string): Promise<void> => {
      const requestId = `${thingId}.${Date.now().toString(36)}`
      const reply = await new Promise<{ ok?: unknown; code?: unknown } | null>((resolve) => {
        const t = setTimeout(() => resolve(null), config.createTimeoutMs)
        waiting.set(requestId, (r) => {
          clearTimeout(t)
          resolve(r)
        })
        const body = { v: 1, requestId, replyTo: replyTopic, id: thingId, thing: thingDefinition(config, thingId) }
        client.publish('$admin/things/put', JSON.stringify(body), { qos: 1 }, (err) => {
          if (err) {
            clearTimeout(t)
            resolve({ ok: false, code: `publish ${failureReason(err)}` })
          }
        })
      })
      waiting.delete(requestId)
      if (reply === null) failed.timeout = (failed.timeout ?? 0) + 1
      else if (reply.ok === true) created++
      else {
        const code = typeof reply.code === 'string' ? reply.code : 'rejected'
        failed[code] = (failed[code] ?? 0) + 1
      }
    }
    const lanes = Array.from({ length: Math.min(CONCURRENCY, thingIds.length) }, async () => {
      while (next < thingIds.length) await one(thingIds[next++]!)
    })
    await Promise.all(lanes)
  } finally {
    await client.endAsync(true)
  }
  return { created, failed, durationMs: performance.now() - started }
}

export function createFailure(result: ThingCreateResult, total: number): LoadtestError | null {
  if (result.created === total) return null
  const reasons = Object.entries(result.failed)
    .map(([k, v]) => `${v} ${k}`)
    .join(', ')
  const hint = result.failed.timeout === total ? ' (no engine answering on $admin/things/put? use --no-create)' : ''
  return new LoadtestError('LOADTEST_CREATE_FAILED', `created ${result.created}/${total} things: ${reasons}${hint}`)
}
