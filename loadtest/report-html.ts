// One self-contained HTML file: summary, and inline SVG charts of
// throughput, connections and p99 latency over time with run events
// (connect, exec'd kill, stop) marked on the time axis. No scripts, no
// network: it opens the same from a CI artifact store as from disk.

import type { LoadtestResult, RunEvent } from './result.ts'
import { summaryTable } from './render.ts'

interface Series {
  readonly name: string
  readonly color: string
  readonly points: readonly (readonly [number, number])[]
}

const W = 860
const H = 240
const PAD = { l: 64, r: 16, t: 28, b: 34 }

export function renderHtmlReport(r: LoadtestResult): string {
  const tl = r.timeline
  const maxT = Math.max(1, ...tl.map((p) => p.t), ...r.events.map((e) => e.t))
  const charts = [
    chart('Throughput (messages/s)', maxT, r.events, [
      { name: 'sent/s', color: '#2563eb', points: tl.map((p) => [p.t, p.sent]) },
      { name: 'received/s', color: '#16a34a', points: tl.map((p) => [p.t, p.received]) },
    ]),
    chart('Connections', maxT, r.events, [
      { name: 'connected', color: '#7c3aed', points: tl.map((p) => [p.t, p.connected]) },
      { name: 'disconnects/s', color: '#dc2626', points: tl.map((p) => [p.t, p.disconnects]) },
      { name: 'errors/s', color: '#ea580c', points: tl.map((p) => [p.t, p.errors]) },
    ]),
    chart('Latency p99 per second (ms)', maxT, r.events, [
      { name: 'p99 ms', color: '#db2777', points: tl.filter((p) => p.p99Ms > 0).map((p) => [p.t, p.p99Ms]) },
    ]),
  ]
  const events = r.events.map((e) => `<li><b>${e.t.toFixed(1)} s</b> ${esc(e.label)}</li>`).join('')
  // Embedded for tools that want the numbers; '<' escaped so it cannot close the script element.
  const json = JSON.stringify(r).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>thingmesh loadtest: ${esc(r.scenario)} ${esc(r.startedAt)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#111;max-width:${W + 40}px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
pre{background:#f6f8fa;padding:12px;border-radius:6px;overflow:auto}
svg{background:#fff;border:1px solid #ddd;border-radius:6px;margin:8px 0}
svg text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>thingmesh loadtest — ${esc(r.scenario)}${r.interrupted ? ' (interrupted)' : ''}</h1>
<p>Started ${esc(r.startedAt)} against ${r.settings.urls.map(esc).join(', ')}.</p>
<h2>Summary</h2>
<pre>${esc(summaryTable(r))}</pre>
<h2>Over time</h2>
${charts.join('\n')}
<h2>Events</h2>
<ul>${events}</ul>
<script type="application/json" id="result">${json}</script>
</body></html>
`
}

function chart(title: string, maxT: number, events: readonly RunEvent[], series: readonly Series[]): string {
  const iw = W - PAD.l - PAD.r
  const ih = H - PAD.t - PAD.b
  const maxV = niceCeil(Math.max(1, ...series.flatMap((s) => s.points.map((p) => p[1]))))
  const x = (t: number): number => PAD.l + (t / maxT) * iw
  const y = (v: number): number => PAD.t + ih - (v / maxV) * ih
  const parts: string[] = []
  for (let i = 0; i <= 4; i++) {
    const v = (maxV * i) / 4
    parts.push(`<line stroke="#eee" x1="${PAD.l}" x2="${PAD.l + iw}" y1="${y(v)}" y2="${y(v)}"/>`)
    parts.push(`<text fill="#444" font-size="11" x="${PAD.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmt(v)}</text>`)
  }
  const step = niceCeil(maxT / 10)
  for (let t = 0; t <= maxT + 1e-9; t += step) {
    parts.push(`<text fill="#444" font-size="11" x="${x(t)}" y="${PAD.t + ih + 16}" text-anchor="middle">${fmt(t)}s</text>`)
  }
  parts.push(`<line stroke="#999" x1="${PAD.l}" x2="${PAD.l}" y1="${PAD.t}" y2="${PAD.t + ih}"/>`)
  parts.push(`<line stroke="#999" x1="${PAD.l}" x2="${PAD.l + iw}" y1="${PAD.t + ih}" y2="${PAD.t + ih}"/>`)
  events.forEach((e, i) => {
    // Styles are attributes, not CSS classes, so a chart copied out of the page still renders.
    parts.push(`<line stroke="#b91c1c" stroke-dasharray="4 3" x1="${x(e.t)}" x2="${x(e.t)}" y1="${PAD.t}" y2="${PAD.t + ih}"><title>${esc(e.label)}</title></line>`)
    const right = x(e.t) > PAD.l + iw * 0.75
    parts.push(
      `<text fill="#b91c1c" font-size="11" x="${x(e.t) + (right ? -3 : 3)}" y="${PAD.t + 10 + (i % 4) * 11}" text-anchor="${right ? 'end' : 'start'}">${esc(truncate(e.label, 32))}</text>`,
    )
  })
  series.forEach((s, i) => {
    if (s.points.length > 0) {
      const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('')
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.8"><title>${esc(s.name)}</title></path>`)
    }
    const lx = PAD.l + 8 + i * 140
    parts.push(`<rect x="${lx}" y="8" width="10" height="10" fill="${s.color}"/><text fill="#444" font-size="11" x="${lx + 14}" y="17">${esc(s.name)}</text>`)
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">
<text fill="#111" font-size="12" x="${W - PAD.r}" y="17" text-anchor="end" font-weight="bold">${esc(title)}</text>
${parts.join('\n')}
</svg>`
}

/** 1, 2, 5 × 10^k at or above v. */
export function niceCeil(v: number): number {
  if (v <= 0) return 1
  const e = Math.pow(10, Math.floor(Math.log10(v)))
  for (const m of [1, 2, 5, 10]) if (m * e >= v) return m * e
  return 10 * e
}

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`
  if (v >= 1e4) return `${(v / 1e3).toFixed(0)}k`
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1)
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
