import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface HealthReport {
  ok: boolean
  [k: string]: unknown
}

export interface HttpHandlers {
  health(): HealthReport
  metrics(): Promise<{ contentType: string, body: string }>
}

/** /healthz (200 or 503 with a JSON reason) and /metrics (Prometheus text). */
export async function startHttp (host: string, port: number, h: HttpHandlers): Promise<{ server: Server, port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET') { res.writeHead(405, { allow: 'GET' }).end(); return }
    if (path === '/healthz') {
      const report = h.health()
      res.writeHead(report.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(report))
      return
    }
    if (path === '/metrics') {
      h.metrics().then(({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType }).end(body)
      }, (err: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed: ' + err.message)
      })
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz or /metrics\n')
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => { server.off('error', reject); resolve() })
  })
  return { server, port: (server.address() as AddressInfo).port }
}
