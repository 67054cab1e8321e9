// S6: one client tries to exhaust subscriptions, payload memory or in-flight
// state. Caps under test: --max-subscriptions-per-client (1000),
// --max-packet-size (1 MiB), --max-inflight-inbound (100 QoS2 awaiting
// PUBREL), --max-queued-messages (set to 1000 here) for a subscriber that
// never acknowledges. A bystander's latency is watched throughout.
import { connect as tcpConnect, type Socket } from 'node:net'
import { createRequire } from 'node:module'
import mqtt, { type MqttClient } from 'mqtt'
import { Redis } from 'ioredis'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { cpuSecondsOf, launchSettings, noIpCaps, rssOf, type ChaosNode } from '../cluster.ts'
import { startProbe } from '../probe.ts'

const require = createRequire(import.meta.url)
const mqttPacket = require('mqtt-packet') as {
  generate(p: object): Buffer
  parser(): { on(ev: 'packet', fn: (p: { cmd: string, messageId?: number, granted?: number[] }) => void): void, on(ev: 'error', fn: () => void): void, parse(b: Buffer): void }
}

const QUEUE_CAP = 1000
const MB = 1024 * 1024

async function client (node: ChaosNode, clientId: string, clean = true): Promise<MqttClient> {
  const c = mqtt.connect({ host: node.host, port: node.port, clientId, clean, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 })
  c.on('error', () => {})
  await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('close', () => reject(new Error(`${clientId} closed before CONNACK`))) })
  return c
}

/** A raw client: CONNECT, then whatever the test writes; it never acknowledges anything. */
async function rawClient (node: ChaosNode, clientId: string, clean: boolean): Promise<{ s: Socket, closed: Promise<number>, received: () => number }> {
  const s = tcpConnect(node.port, node.host)
  s.on('error', () => {})
  let bytes = 0
  const closed = new Promise<number>((resolve) => s.once('close', () => resolve(Date.now())))
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => s.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive: 60 })))
    s.once('data', (d: Buffer) => d[0] === 0x20 && d[3] === 0 ? resolve() : reject(new Error(`${clientId}: CONNACK ${d[3]}`)))
    s.once('close', () => reject(new Error(`${clientId} closed before CONNACK`)))
  })
  s.on('data', (d: Buffer) => { bytes += d.length })
  return { s, closed, received: () => bytes }
}

export const s6: ChaosTest = {
  id: 'S6',
  title: 'Resource exhaustion: subscriptions and payloads',
  async run (ctx) {
    const args = [...noIpCaps(), '--max-queued-messages', String(QUEUE_CAP)]
    return withSimpleEnv({ nodes: 1, tag: 'S6', args }, async ({ redis, cluster }) => {
      const node = cluster.nodes[0]
      const rows: Row[] = []
      const probe = await startProbe({ host: node.host, port: node.port }, 's6')
      const rssStart = rssOf(node.pid())
      const cpuStart = cpuSecondsOf(node.pid())
      const wallStart = Date.now()
      let rssPeak = rssStart
      // Peak per phase, so growth is attributed to the attack that caused it.
      let phase = 'subscriptions'
      const phasePeak: Record<string, number> = {}
      const phaseStart: Record<string, number> = { subscriptions: rssStart }
      const enter = (p: string): void => { phase = p; phaseStart[p] = rssOf(node.pid()) }
      const sampler = setInterval(() => {
        const v = rssOf(node.pid())
        rssPeak = Math.max(rssPeak, v)
        phasePeak[phase] = Math.max(phasePeak[phase] ?? 0, v)
      }, 100)
      try {
        // 1. Many distinct filters from one client, 100 per SUBSCRIBE.
        const filters = Math.round(ctx.num('CHAOS_S6_FILTERS', 100_000) * Math.min(1, ctx.scale * 2))
        // Raw packets: mqtt.js turns a SUBACK with 0x80 into an error without the granted list.
        const sub = await rawClient(node, 's6-subs', true)
        const parser = mqttPacket.parser()
        const subacks = new Map<number, (granted: number[]) => void>()
        parser.on('packet', (p) => { if (p.cmd === 'suback') subacks.get(p.messageId!)?.(p.granted ?? []) })
        parser.on('error', () => {})
        sub.s.on('data', (d: Buffer) => parser.parse(d))
        let granted = 0
        let refused = 0
        let unanswered = 0
        for (let i = 0, mid = 1; i < filters && !sub.s.destroyed; i += 100, mid = (mid % 65535) + 1) {
          const batch = Array.from({ length: Math.min(100, filters - i) }, (_v, k) => ({ topic: `s6/f/${i + k}`, qos: 1 }))
          const got = await new Promise<number[] | null>((resolve) => {
            const timer = setTimeout(() => resolve(null), 10_000)
            subacks.set(mid, (g) => { clearTimeout(timer); resolve(g) })
            sub.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: mid, subscriptions: batch }))
          })
          subacks.delete(mid)
          if (got === null) { unanswered += batch.length; break }
          for (const g of got) if (g === 128) refused++; else granted++
        }
        rows.push(row('S6', `subscriptions capped at 1000 per client, the rest SUBACK 0x80 (${filters} filters)`, `${granted} granted, ${refused} refused (0x80)${unanswered ? `, ${unanswered} unanswered` : ''}; client ${sub.s.destroyed ? 'disconnected' : 'still connected'}`, granted <= 1000 && granted + refused === filters))
        sub.s.destroy()

        enter('payloads')
        // 2. Payloads: one over --max-packet-size disconnects; large ones under it at 50/s are carried without growth.
        const big = await client(node, 's6-big')
        const bigClosed = new Promise<number>((resolve) => big.once('close', () => resolve(Date.now())))
        const sentAt = Date.now()
        big.publish('s6/big', Buffer.alloc(MB, 1), { qos: 0 })
        const closedAt = await Promise.race([bigClosed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 5000))])
        big.end(true)
        rows.push(row('S6', '1 MiB payload (over --max-packet-size 1 MiB with its header) disconnects the client', Number.isFinite(closedAt) ? `disconnected after ${closedAt - sentAt} ms` : 'not disconnected in 5 s', Number.isFinite(closedAt)))
        const heavy = await client(node, 's6-heavy')
        const heavyMs = ctx.ms(10_000, 3000)
        let heavySent = 0
        const t0 = Date.now()
        while (Date.now() - t0 < heavyMs && heavy.connected) {
          const tick = Date.now()
          heavy.publish('s6/heavy', Buffer.alloc(MB - 1024, 2), { qos: 1 })
          heavySent++
          await new Promise((resolve) => setTimeout(resolve, Math.max(0, 20 - (Date.now() - tick))))
        }
        const heavyConnected = heavy.connected
        await heavy.endAsync(true).catch(() => {})
        rows.push(info('S6', 'payloads just under the limit at 50/s', `${heavySent} × 1023 KiB QoS1 in ${Date.now() - t0} ms; client ${heavyConnected ? 'stayed connected' : 'was disconnected'}`))

        enter('inflight')
        // 3a. Inbound QoS2 never released: the node's cap is 100 awaiting PUBREL.
        const q2 = await rawClient(node, 's6-qos2', true)
        const q2Sent = 300
        for (let i = 1; i <= q2Sent && !q2.s.destroyed; i++) q2.s.write(mqttPacket.generate({ cmd: 'publish', topic: 's6/q2', payload: Buffer.from('x'), qos: 2, messageId: i }))
        const q2Closed = await Promise.race([q2.closed.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000))])
        q2.s.destroy()
        rows.push(row('S6', 'inbound QoS2 awaiting PUBREL capped (100), then disconnect', `${q2Sent} QoS2 PUBLISH without PUBREL: ${q2Closed ? 'disconnected' : 'still connected after 5 s'}`, q2Closed))

        // 3b. A persistent subscriber that never PUBACKs while messages keep coming: its queue stays capped.
        const lazy = await rawClient(node, 's6-lazy', false)
        lazy.s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's6/flood', qos: 1 }] }))
        const floodN = Math.round(ctx.num('CHAOS_S6_FLOOD', 65_535) * Math.min(1, ctx.scale * 2))
        const pub = await client(node, 's6-flood')
        // Wait for the SUBACK to have been processed: a first message must reach the lazy client.
        const before = lazy.received()
        for (let k = 0; k < 50 && lazy.received() === before; k++) { await pub.publishAsync('s6/flood', 'warm', { qos: 1 }); await new Promise((resolve) => setTimeout(resolve, 100)) }
        let floodAcked = 0
        for (let i = 0; i < floodN && pub.connected; i += 500) {
          await Promise.all(Array.from({ length: Math.min(500, floodN - i) }, () => pub.publishAsync('s6/flood', Buffer.alloc(64, 3), { qos: 1 }).then(() => { floodAcked++ }, () => {})))
        }
        const r = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: 1 })
        const qLen = await r.llen('tm:{thingmesh}:q:s6-lazy')
        const qpLen = await r.hlen('tm:{thingmesh}:qp:s6-lazy')
        r.disconnect()
        await pub.endAsync(true)
        rows.push(row('S6', `queue of a subscriber that never PUBACKs capped (--max-queued-messages ${QUEUE_CAP})`, `${floodAcked} QoS1 published to it (${floodN} asked); queue ${qLen} packet keys, ${qpLen} packets stored; lazy client ${lazy.s.destroyed ? 'disconnected' : 'connected'}, received ${(lazy.received() / MB).toFixed(1)} MiB`, qLen <= QUEUE_CAP && qpLen <= QUEUE_CAP && floodAcked > QUEUE_CAP))
        lazy.s.destroy()
        rows.push(info('S6', 'outbound inflight window', 'aedes has no per-client outbound inflight limit (docs/security.md, "Not done yet"): the queue cap above is what bounds an unacknowledging client'))
      } catch (err) {
        await probe.stop()
        throw err
      } finally {
        clearInterval(sampler)
      }
      const rssEnd = rssOf(node.pid())
      const cpu = cpuSecondsOf(node.pid()) - cpuStart
      const launch = launchSettings()
      const growth = (rssPeak - rssStart) / MB
      rows.push(row('S6', 'node RSS growth < 50 MB', `${(rssStart / MB).toFixed(0)} MB → peak ${(rssPeak / MB).toFixed(0)} MB (+${growth.toFixed(1)} MB), ${(rssEnd / MB).toFixed(0)} MB at the end; growth within each phase (its peak minus its start): ${Object.entries(phasePeak).map(([k, v]) => `${k} +${((v - phaseStart[k]) / MB).toFixed(0)} MB`).join(', ')}`, growth < 50))
      rows.push(info('S6', 'node CPU and launch settings', `${cpu.toFixed(1)} s CPU over the ${((Date.now() - wallStart) / 1000).toFixed(0)} s of attacks; node flags ${launch.nodeFlags.join(' ') || 'none'}, MALLOC_MMAP_THRESHOLD_ ${launch.mmapThreshold === '' ? 'unset' : launch.mmapThreshold}`))
      const p = await probe.stop()
      rows.push(row('S6', 'bystander p99 < 100 ms, node alive', `p99 ${p.latency.p99Ms} ms, ${p.received}/${p.sent}; node ${node.alive() ? 'alive' : 'DEAD'}`, p.latency.p99Ms < 100 && p.received === p.sent && node.alive()))
      return rows
    })
  },
}
