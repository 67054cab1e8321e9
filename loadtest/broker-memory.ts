// Broker resident memory, from /proc (--pid) or a Prometheus endpoint
// (--metrics), to estimate memory per connection in the conn scenario.

import { readFile } from 'node:fs/promises'

export interface MemoryProbe {
  readonly source: string
  read(): Promise<number | null>
}

export function memoryProbe(pid: number | null, metricsUrl: string | null): MemoryProbe | null {
  if (pid !== null) return { source: `/proc/${pid}/status`, read: () => rssFromProc(pid) }
  if (metricsUrl !== null) return { source: metricsUrl, read: () => rssFromMetrics(metricsUrl) }
  return null
}

async function rssFromProc(pid: number): Promise<number | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8')
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text)
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

async function rssFromMetrics(url: string): Promise<number | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
    if (!res.ok) return null
    return parseRss(await res.text())
  } catch {
    return null
  }
}

/**
 * process_resident_memory_bytes from Prometheus text format (prom-client's
 * default metric), with or without a registry prefix such as thingmesh's
 * `thingmesh_process_`.
 */
export function parseRss(text: string): number | null {
  const m = /^[a-zA-Z_:]*process_resident_memory_bytes(?:\{[^}]*\})?\s+([0-9.eE+]+)/m.exec(text)
  return m ? Number(m[1]) : null
}
