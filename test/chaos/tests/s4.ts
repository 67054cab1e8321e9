// S4: wildcard and $-topic escapes. With users (device role, ACL
// `things/{username}/…`), device A tries every filter that could reach device
// B's traffic; anonymous or not, nobody but an admin reaches $SYS or $admin.
import mqtt, { type MqttClient } from 'mqtt'
import { row, notRun, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { hasOption, noIpCaps } from '../cluster.ts'
import { adminConnect } from '../admin.ts'
import type { Server } from '../stream.ts'

const ADMIN_PW = 'chaos-admin-password-1'

async function client (server: Server, clientId: string, creds?: { username: string, password: string }): Promise<MqttClient> {
  const c = mqtt.connect({ host: server.host, port: server.port, clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...creds })
  await new Promise<void>((resolve, reject) => { c.once('connect', () => resolve()); c.once('error', reject); c.once('close', () => reject(new Error(`${clientId} closed before CONNACK`))) })
  c.on('error', () => {})
  return c
}

/** SUBACK code per filter, or 'closed' if the broker disconnected instead. */
async function trySubscribe (c: MqttClient, filter: string): Promise<number | 'closed'> {
  if (!c.connected) return 'closed'
  return new Promise((resolve) => {
    const onClose = (): void => resolve('closed')
    c.once('close', onClose)
    c.subscribe(filter, { qos: 1 }, (err, granted) => {
      c.off('close', onClose)
      if (err || !granted?.length) resolve(c.connected ? 128 : 'closed')
      else resolve(granted[0].qos)
    })
    setTimeout(() => resolve('closed'), 5000)
  })
}

export const s4: ChaosTest = {
  id: 'S4',
  title: 'ACL escapes via wildcards and $-topics',
  async run (ctx) {
    const users = hasOption('--admin-password')
    const n = Math.max(500, Math.round(ctx.num('CHAOS_S4_MESSAGES', 10_000) * Math.min(1, ctx.scale * 2)))
    const args = users ? ['--allow-anonymous', 'false', '--admin-password', ADMIN_PW, ...noIpCaps()] : noIpCaps()
    return withSimpleEnv({ nodes: 2, tag: 'S4', args }, async ({ cluster }) => {
      const [n1, n2] = cluster.nodes
      const s = (x: typeof n1): Server => ({ host: x.host, port: x.port })
      const rows: Row[] = []
      let credsA: { username: string, password: string } | undefined
      let credsB: { username: string, password: string } | undefined
      if (users) {
        const admin = await adminConnect(s(n1), 'admin', ADMIN_PW)
        for (const u of ['devA', 'devB']) {
          const r = await admin.call('users/put', { username: u, role: 'device', password: `${u}-password-123` })
          if (!r.ok) throw new Error(`users/put ${u}: ${JSON.stringify(r.error)}`)
        }
        await admin.close()
        credsA = { username: 'devA', password: 'devA-password-123' }
        credsB = { username: 'devB', password: 'devB-password-123' }
      }
      const root = users ? 'things' : 'things'
      const filters = ['#', '+/#', `${root}/+/#`, `${root}/devB/#`, '$SYS/#', '$admin/#', '$admin/reply/+', 'a#', `${root}/devA\u0000/x`, '$share/g/things/#', `${root}/devA/../devB/#`]
      const codes: Record<string, number | 'closed'> = {}
      const got: string[] = []
      // One connection per filter, so a disconnect for one filter does not hide the others.
      const attackers: MqttClient[] = []
      for (const f of filters) {
        const a = await client(s(n1), `${credsA ? 'devA:' : 's4-a-'}${attackers.length}`, credsA ? { ...credsA } : undefined).catch(() => null)
        if (!a) { codes[f] = 'closed'; continue }
        a.on('message', (t) => got.push(t))
        attackers.push(a)
        codes[f] = await trySubscribe(a, f)
      }
      // B publishes live and retained messages from the other node.
      const b = await client(s(n2), credsB ? 'devB' : 's4-b', credsB)
      for (let i = 0; i < 100; i++) await b.publishAsync(`${root}/devB/r${i}`, `retained-${i}`, { qos: 1, retain: true })
      const batch = 200
      for (let i = 0; i < n; i += batch) await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, k) => b.publishAsync(`${root}/devB/telemetry`, String(i + k), { qos: 1 })))
      // A late subscriber gets retained messages at SUBSCRIBE time.
      const late = await client(s(n1), credsA ? 'devA:late' : 's4-a-late', credsA).catch(() => null)
      const lateCodes: Record<string, number | 'closed'> = {}
      if (late) {
        late.on('message', (t) => got.push(t))
        for (const f of ['#', `${root}/+/#`, `${root}/devB/#`]) lateCodes[f] = await trySubscribe(late, f)
      }
      // A marker from A itself proves A's connections still deliver (the window is bounded by it, not a sleep).
      const marker = await client(s(n2), credsA ? 'devA:marker' : 's4-marker', credsA).catch(() => null)
      const markerTopic = `${root}/devA/marker`
      if (marker) {
        const watch = attackers.find((x) => x.connected)
        if (watch) {
          await watch.subscribeAsync(markerTopic, { qos: 1 }).catch(() => {})
          const seen = new Promise<void>((resolve) => { watch.on('message', (t) => { if (t === markerTopic) resolve() }); setTimeout(resolve, 5000) })
          await marker.publishAsync(markerTopic, 'm', { qos: 1 }).catch(() => {})
          await seen
        }
      }
      const fromB = got.filter((t) => t.includes('devB'))
      const denied = (c: number | 'closed' | undefined): boolean => c === 'closed' || c === 128
      if (users) {
        rows.push(row('S4', '0 messages or retained messages from B delivered to A', `${fromB.length} of ${n} live + 100 retained reached A`, fromB.length === 0, { sample: fromB.slice(0, 5) }))
        const mustDeny = [`${root}/+/#`, `${root}/devB/#`, '#', '+/#']
        const bad = mustDeny.filter((f) => !denied(codes[f]))
        rows.push(row('S4', 'every forbidden filter: SUBACK 0x80 or disconnect', `${mustDeny.map((f) => `${f}→${codes[f]}`).join(', ')}`, bad.length === 0, { codes, lateCodes }))
      } else {
        rows.push(notRun('S4', '0 messages from B delivered to tenant A', 'node has no users/ACL (no --admin-password option)'))
      }
      rows.push(row('S4', '$SYS/# denied to non-admins', `SUBACK ${codes['$SYS/#']}`, denied(codes['$SYS/#'])))
      rows.push(row('S4', '$admin/# and $admin/reply/+ denied to non-admins', `$admin/# → ${codes['$admin/#']}, $admin/reply/+ → ${codes['$admin/reply/+']}`, denied(codes['$admin/#']) && denied(codes['$admin/reply/+'])))
      rows.push(row('S4', 'a# and NUL filters rejected', `a# → ${codes['a#']}, NUL → ${codes[`${root}/devA\u0000/x`]}`, denied(codes['a#']) && denied(codes[`${root}/devA\u0000/x`])))
      rows.push({ ...row('S4', '$share/g/things/# (shared subscription)', `SUBACK ${codes['$share/g/things/#']}`, denied(codes['$share/g/things/#']) || !users), result: users ? (denied(codes['$share/g/things/#']) || fromB.length === 0 ? 'pass' : 'fail') : 'info' })
      // Publishing into $SYS/ and $admin/ as a non-admin.
      const pubRes: Record<string, string> = {}
      for (const topic of ['$SYS/chaos/fake', '$admin/users/put']) {
        const c = await client(s(n1), `${credsA ? 'devA:' : 's4-'}p${Object.keys(pubRes).length}`, credsA).catch(() => null)
        if (!c) { pubRes[topic] = 'connect refused'; continue }
        const outcome = await new Promise<string>((resolve) => {
          c.once('close', () => resolve('disconnected'))
          c.publish(topic, JSON.stringify({ v: 1, id: 'x', args: { username: 'evil', role: 'admin', password: 'evil-password-1' } }), { qos: 1 }, (err) => resolve(err ? `error ${err.message}` : 'PUBACK'))
          setTimeout(() => resolve('no answer'), 3000)
        })
        pubRes[topic] = outcome
        await c.endAsync(true).catch(() => {})
      }
      let evilCreated = false
      if (users) {
        const admin = await adminConnect(s(n1), 'admin', ADMIN_PW)
        const list = await admin.call('users/list', {})
        evilCreated = JSON.stringify(list.result ?? []).includes('"evil"')
        await admin.close()
      }
      const refused = Object.values(pubRes).every((o) => o === 'disconnected' || o === 'connect refused')
      rows.push(row('S4', 'publishing to $SYS/ or $admin/ by non-admins refused', `${Object.entries(pubRes).map(([t, o]) => `${t}: ${o}`).join('; ')}${users ? `; user "evil" created: ${evilCreated}` : ''}`, refused && !evilCreated, { note: 'MQTT 3.1.1 has no PUBACK error code: refusal is a disconnect' }))
      await Promise.all([...attackers, b, late, marker].filter((c): c is MqttClient => !!c).map((c) => c.endAsync(true).catch(() => {})))
      return rows
    })
  },
}
