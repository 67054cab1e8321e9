import type { Readable } from 'node:stream'
import { retainedView, type RetainedView } from '../context.ts'

/** Reads up to `limit` retained messages matching `filter` from an aedes persistence, then stops the stream. */
export async function readRetained (persistence: { createRetainedStream(filter: string): Readable }, filter: string, limit: number): Promise<RetainedView[]> {
  const out: RetainedView[] = []
  const stream = persistence.createRetainedStream(filter)
  try {
    for await (const p of stream) {
      out.push(retainedView(p as { topic: string, qos: number, payload: Buffer }))
      if (out.length >= limit) break
    }
  } finally { stream.destroy() }
  return out.sort((a, b) => a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0)
}
