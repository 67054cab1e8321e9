// Text output: the live line and the final summary table. Pure (returns strings).

import type { LoadtestResult, TimelinePoint } from './result.ts'
import type { PercentileSummary } from './stats.ts'

export function liveLine(p: TimelinePoint, totalClients: number): string {
  return (
    `[${p.t.toFixed(0).padStart(4)}s] conn ${p.connected}/${totalClients}` +
    `  sent ${p.sent}/s  recv ${p.received}/s  err ${p.errors}` +
    (p.p99Ms > 0 ? `  p99 ${fmtMs(p.p99Ms)}` : '')
  )
}

export function summaryTable(r: LoadtestResult): string {
  const rows: [string, string][] = []
  const add = (k: string, v: string): void => {
    rows.push([k, v])
  }
  add('scenario', `${r.scenario}${r.interrupted ? ' (interrupted)' : ''}`)
  add('brokers', r.settings.urls.join(', '))
  add('elapsed', `${(r.elapsedMs / 1000).toFixed(1)} s`)
  const c = r.connections
  add('connections', `${c.connected}/${c.attempted} connected, ${c.connectPerSec}/s`)
  if (c.connectTime.count > 0) add('connect time', pct(c.connectTime))
  for (const [reason, n] of Object.entries(c.failures)) add('  failed', `${n} ${reason}`)
  if (r.memory) {
    add('broker memory', `${mib(r.memory.beforeBytes)} -> ${mib(r.memory.afterBytes)} (${r.memory.source})`)
    add('per connection', `${(r.memory.perConnectionBytes / 1024).toFixed(1)} KiB`)
  }
  if (r.scenario !== 'conn') {
    const m = r.messages
    add('sent', `${m.sent} (${m.sentPerSec}/s), acked ${m.acked}${m.behind > 0 ? `, ${m.behind} behind schedule` : ''}`)
    add(r.scenario === 'fleet' ? 'notified' : 'received', `${m.received} (${m.receivedPerSec}/s)`)
  }
  if (r.loss.checked) {
    const l = r.loss
    add('lost', String(l.lost))
    add('duplicates', String(l.duplicates))
    add('out of order', String(l.outOfOrder))
    if (l.foreign > 0) add('foreign', `${l.foreign} (not from this run)`)
    if (l.injectedDrops > 0) add('injected drops', String(l.injectedDrops))
  }
  if (r.latency.count > 0) add(r.scenario === 'fleet' ? 'notify latency' : 'latency', pct(r.latency))
  if (r.fleet) {
    const cr = r.fleet.create
    add('things', cr === null ? `${r.fleet.things} (not created)` : `${cr.created}/${r.fleet.things} created in ${(cr.durationMs / 1000).toFixed(1)} s`)
    add('updates', `${r.fleet.updates}, ${r.fleet.notifications} notified`)
  }
  const f = r.failover
  if (f) {
    if (f.exec !== null) add('exec', `${f.exec} at ${f.execAtS ?? '-'} s, exit ${f.execExitCode ?? 'pending'}`)
    add('longest gap', `${f.longestGapMs} ms${f.longestGapAtS !== null ? ` at ${f.longestGapAtS} s` : ''}`)
    add('reconnected', `${f.clientsDisconnected} clients dropped, ${f.clientsStillDown} still down`)
    add('recovery', f.recoveryMs === null ? 'not recovered' : `${f.recoveryMs} ms`)
  }
  for (const [reason, n] of Object.entries(r.errors)) add('  error', `${n} ${reason}`)
  const w = Math.max(...rows.map(([k]) => k.length))
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n'
}

function pct(s: PercentileSummary): string {
  return `p50 ${fmtMs(s.p50Ms)}  p90 ${fmtMs(s.p90Ms)}  p99 ${fmtMs(s.p99Ms)}  p99.9 ${fmtMs(s.p999Ms)}  max ${fmtMs(s.maxMs)}  (n=${s.count})`
}

export function fmtMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)}ms` : ms >= 10 ? `${ms.toFixed(1)}ms` : `${ms.toFixed(2)}ms`
}

function mib(b: number): string {
  return `${(b / 1048576).toFixed(1)} MiB`
}
