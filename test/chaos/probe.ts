// A bystander: one publisher and one subscriber on a node exchanging QoS1
// messages at a low rate, so a test can say whether other clients' latency
// was affected by an attack. Bounded: it stops at stop() or after maxMs.
import mqtt from 'mqtt'
import { LatencyHistogram, decodePayload, encodePayload, type PercentileSummary } from '../../loadtest/index.ts'
import { nowUs, type Server } from './stream.ts'

export interface Probe {
  stop(): Promise<{ latency: PercentileSummary, sent: number, received: number, errors: number }>
}

export async function startProbe (server: Server, name: string, ratePerSec = 50, maxMs = 300_000): Promise<Probe> {
  const hist = new LatencyHistogram()
  const opts = { host: server.host, port: server.port, protocolVersion: 4 as const, reconnectPeriod: 500, connectTimeout: 3000 }
  const sub = mqtt.connect({ ...opts, clientId: `${name}-probe-sub` })
  const pub = mqtt.connect({ ...opts, clientId: `${name}-probe-pub` })
  let errors = 0
  for (const c of [sub, pub]) c.on('error', () => { errors++ })
  await Promise.all([sub, pub].map((c) => new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); setTimeout(() => reject(new Error('probe did not connect')), 10_000) })))
  let received = 0
  sub.on('message', (_t, p) => {
    const d = decodePayload(p)
    if (d) { received++; hist.recordUs(nowUs() - d.sendTsUs) }
  })
  await sub.subscribeAsync(`probe/${name}`, { qos: 1 })
  let seq = 0
  const started = Date.now()
  const timer = setInterval(() => {
    if (Date.now() - started > maxMs) { clearInterval(timer); return }
    if (pub.connected) pub.publish(`probe/${name}`, encodePayload('probe', ++seq, nowUs()), { qos: 1 }, (err) => { if (err) errors++ })
  }, Math.max(1, Math.round(1000 / ratePerSec)))
  return {
    async stop () {
      clearInterval(timer)
      // Messages still on the way count toward latency; wait for them briefly.
      const until = Date.now() + 2000
      while (received < seq && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
      await Promise.all([sub.endAsync(true), pub.endAsync(true)]).catch(() => {})
      return { latency: hist.summary(), sent: seq, received, errors }
    },
  }
}
