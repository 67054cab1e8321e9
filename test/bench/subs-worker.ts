/**
 * A subscriber process of `npm run bench:subs` (test/bench/subscriptions.ts).
 * It holds a share of the subscribers as raw sockets (the per-process fd
 * limit caps how many one process may hold) and counts the PUBLISH packets
 * they receive. Driven over IPC by the parent; exits when the parent goes.
 */
import { connect as tcpConnect, type Socket } from 'node:net'
import { connectPacket, packetReader, PINGREQ, subscribePacket, TYPE } from './mqtt-wire.ts'

export type WorkerRequest =
  /** Subscribers [from, to): id i connects to ports[i % ports.length] and subscribes to `template` with {id} replaced by i. */
  | { op: 'subscribe', ports: number[], from: number, to: number, template: string, concurrency: number, timeoutMs: number }
  | { op: 'stats' }
  | { op: 'close' }

export type WorkerReply =
  | { op: 'subscribed', ok: number, failedIds: number[], firstError: string | null }
  | { op: 'stats', received: number, firstAt: number, lastAt: number, dropped: number }

/** Keepalive the CONNECT asks for; a PINGREQ every half of it keeps idle subscribers alive through long runs. */
const KEEPALIVE_S = 120

const sockets: Socket[] = []
let received = 0
let firstAt = 0
let lastAt = 0
/** Subscribed sockets the broker closed afterwards. */
let dropped = 0
const now = (): number => performance.timeOrigin + performance.now()

function reply (r: WorkerReply): void { process.send!(r) }

/** One subscriber: CONNECT, wait for CONNACK, SUBSCRIBE, wait for SUBACK; then it only counts. */
function subscribeOne (port: number, id: number, filter: string, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const s = tcpConnect({ port, host: '127.0.0.1', noDelay: true })
    let settled = false
    const settle = (err: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) s.destroy()
      else sockets.push(s)
      resolve(err)
    }
    const timer = setTimeout(() => settle(`client ${id}: no SUBACK within ${timeoutMs} ms`), timeoutMs)
    s.on('error', (e) => settle(`client ${id}: ${e.message}`))
    s.on('close', () => { if (settled) dropped++; else settle(`client ${id}: closed before SUBACK`) })
    s.on('connect', () => s.write(connectPacket(`sub-${id}`, KEEPALIVE_S)))
    s.on('data', packetReader((type, body) => {
      if (type === TYPE.publish) {
        const t = now()
        if (received++ === 0) firstAt = t
        lastAt = t
      } else if (type === TYPE.connack) {
        if (body![1] !== 0) settle(`client ${id}: CONNACK return code ${body![1]}`)
        else s.write(subscribePacket(1, filter, 0))
      } else if (type === TYPE.suback) {
        settle(body![2] === 0x80 ? `client ${id}: SUBACK refused the filter` : null)
      }
    }))
  })
}

async function subscribeAll (req: Extract<WorkerRequest, { op: 'subscribe' }>): Promise<void> {
  let next = req.from
  let ok = 0
  const failedIds: number[] = []
  let firstError: string | null = null
  const lane = async (): Promise<void> => {
    while (next < req.to) {
      const id = next++
      const err = await subscribeOne(req.ports[id % req.ports.length], id, req.template.replace('{id}', String(id)), req.timeoutMs)
      if (err) { failedIds.push(id); firstError ??= err } else ok++
    }
  }
  await Promise.all(Array.from({ length: req.concurrency }, lane))
  reply({ op: 'subscribed', ok, failedIds, firstError })
}

const pinger = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write(PINGREQ) }, KEEPALIVE_S * 500)
pinger.unref()

process.on('message', (m: WorkerRequest) => {
  if (m.op === 'subscribe') void subscribeAll(m)
  else if (m.op === 'stats') reply({ op: 'stats', received, firstAt, lastAt, dropped })
  else {
    for (const s of sockets) s.destroy()
    process.exit(0)
  }
})
// The parent died or closed the channel: nothing will ask for figures any more.
process.on('disconnect', () => process.exit(0))
