import t from 'tap'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { startRedis } from '../helpers/redis.ts'
import { connectPacket, rawConnect } from '../helpers/raw.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// Guarantee 7 (MQTT 3.1.1 conformance where aedes deviates) and 8 (bad input
// closes only the offender), on a standalone node and on a cluster node.
const redis = await startRedis()
const standalone = await startNodeProcess({ args: ['--max-packet-size', '65536'] })
const clustered = await startNodeProcess({ redis: redis.url, args: ['--max-packet-size', '65536'] })
t.teardown(async () => { await standalone.kill(); await clustered.kill(); await redis.stop() })

t.test('[S7] a keepalive over the cap (or none) is accepted and held to the cap, not refused with an undefined return code', async (t) => {
  const capped = await startNodeProcess({ args: ['--keepalive-limit', '1'] })
  t.teardown(() => capped.kill())
  for (const keepalive of [65535, 0]) {
    const raw = await rawConnect(capped.port)
    const sent = Date.now()
    raw.send(connectPacket(`ka-${keepalive}`, { keepalive }))
    t.equal((await raw.next('connack')).returnCode, 0, `keepalive ${keepalive}: CONNACK 0`)
    const closedAt = await raw.closed
    // [MQTT-3.1.2-24] 1.5 × the granted 1 s; never earlier.
    t.ok(closedAt - sent >= 1400, `keepalive ${keepalive}: a silent client is closed after 1.5 × the cap (${closedAt - sent} ms)`)
  }
  const pinging = await connect(capped.port, { clientId: 'ka-pinging', keepalive: 1 })
  let pongs = 0
  pinging.on('packetreceive', (p) => { if (p.cmd === 'pingresp') pongs++ })
  // Three round trips span more than 1.5 × the cap.
  await waitFor(() => pongs >= 3, 'three PINGRESPs', 10_000)
  t.ok(pinging.connected, 'a client that pings within its keepalive stays connected')
  await close(pinging)
})

for (const [mode, node] of [['standalone', standalone], ['cluster', clustered]] as Array<[string, NodeProcess]>) {
  t.test(`${mode}: [MQTT-3.1.3-8] empty client id with clean session 0 gets CONNACK 0x02`, async (t) => {
    const raw = await rawConnect(node.port)
    // mqtt-packet refuses to generate this CONNECT, so it is written by hand:
    // protocol "MQTT" level 4, flags 0 (clean session 0), keepalive 30, empty client id.
    raw.send(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x1e, 0x00, 0x00]))
    const ack = await raw.next('connack')
    t.equal(ack.returnCode, 2)
    await raw.closed
    t.pass('connection closed after the refusal')
  })

  t.test(`${mode}: [MQTT-3.2.2-2] session present after reconnecting to a session without subscriptions`, async (t) => {
    const id = `sp-${mode}`
    const first = await connect(node.port, { clientId: id, clean: false })
    await first.endAsync()
    const raw = await rawConnect(node.port)
    raw.send(connectPacket(id, { clean: false }))
    const ack = await raw.next('connack')
    t.equal(ack.returnCode, 0)
    t.equal(ack.sessionPresent, true, 'session present = 1')
    raw.socket.destroy()
    const fresh = await rawConnect(node.port)
    fresh.send(connectPacket(`never-${mode}`, { clean: false }))
    t.equal((await fresh.next('connack')).sessionPresent, false, 'no session before: session present = 0')
    fresh.socket.destroy()
  })

  t.test(`${mode}: [MQTT-3.2.0-1] CONNACK comes first even when messages flow to the restored session`, async (t) => {
    // aedes restores a persistent session's subscriptions before writing the
    // CONNACK; live messages arriving in between used to go out first, and
    // mqtt.js then never read the CONNACK (issue 7: the stall after a drain).
    const id = `first-${mode}`
    const sub = await connect(node.port, { clientId: id, clean: false })
    await sub.subscribeAsync('first/stream', { qos: 1 })
    await sub.endAsync()
    const pub = await connect(node.port, { clientId: `first-pub-${mode}` })
    let running = true
    const stream = (async () => {
      for (let n = 0; running && n < 20_000; n++) {
        pub.publish('first/stream', String(n), { qos: 1 })
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    const firsts: string[] = []
    for (let i = 0; i < 5; i++) {
      const raw = await rawConnect(node.port)
      raw.send(connectPacket(id, { clean: false }))
      await waitFor(() => raw.packets.length > 0, 'a first packet')
      firsts.push(String(raw.packets[0].cmd))
      raw.socket.destroy()
      await raw.closed
    }
    running = false
    await stream
    t.same(firsts, Array(5).fill('connack'), 'the first packet is the CONNACK in 5 reconnects under a stream')
    await close(pub)
  })

  t.test(`${mode}: [MQTT-3.10.3-2] UNSUBSCRIBE without topics closes the connection`, async (t) => {
    const raw = await rawConnect(node.port)
    raw.send(connectPacket(`unsub-${mode}`))
    await raw.next('connack')
    raw.send(Buffer.from([0xa2, 0x02, 0x00, 0x01]))
    await raw.closed
    t.equal(raw.packets.filter((p) => p.cmd === 'unsuback').length, 0, 'no UNSUBACK for an empty UNSUBSCRIBE')
  })

  t.test(`${mode}: invalid and reserved filters are refused with 0x80, others granted`, async (t) => {
    const raw = await rawConnect(node.port)
    raw.send(connectPacket(`filters-raw-${mode}`))
    await raw.next('connack')
    raw.send({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'a#', qos: 0 }, { topic: 'nul\u0000/x', qos: 0 }, { topic: 'fine/#', qos: 0 }] })
    t.same((await raw.next('suback')).granted, [128, 128, 0], 'a# and NUL filters refused, the valid one granted')
    raw.send({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: 'ok/+/x', qos: 1 }, { topic: '$SYS/#', qos: 0 }, { topic: '$admin/#', qos: 0 }] })
    t.same((await raw.next('suback')).granted, [1, 128, 128], '$SYS and $admin refused to an ordinary client')
    t.notOk(raw.socket.destroyed, 'refused filters do not cost the connection')
    raw.socket.destroy()
  })

  t.test(`${mode}: publishing to $SYS or with a wildcard disconnects only that client`, async (t) => {
    const bystander = await connect(node.port, { clientId: `by-${mode}` })
    const got = collect(bystander)
    await bystander.subscribeAsync('bystander/#', { qos: 1 })
    for (const topic of ['$SYS/broker/x', '$admin/clients/kick', 'bad/+/topic']) {
      const raw = await rawConnect(node.port)
      raw.send(connectPacket(`bad-pub-${mode}`))
      await raw.next('connack')
      raw.send({ cmd: 'publish', topic, payload: 'x', qos: 1, messageId: 1 })
      await raw.closed
      t.equal(raw.packets.filter((p) => p.cmd === 'puback').length, 0, `no PUBACK for ${topic}`)
    }
    const pub = await connect(node.port, { clientId: `by-pub-${mode}` })
    await pub.publishAsync('bystander/ok', 'still here', { qos: 1 })
    await waitFor(() => got.length === 1, 'bystander delivery')
    t.ok(bystander.connected, 'the bystander noticed nothing')
    await close(bystander, pub)
  })

  t.test(`${mode}: malformed and oversized packets close the offender before the body is read`, async (t) => {
    const bystander = await connect(node.port, { clientId: `by2-${mode}` })
    const cases: Array<[string, Buffer | null, Buffer]> = [
      ['reserved type 0', null, Buffer.from([0x00, 0x00])],
      ['reserved type 15', null, Buffer.from([0xf0, 0x00])],
      ['5-byte remaining length', null, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
      ['PUBLISH with QoS 3', null, Buffer.from([0x36, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])],
      ['CONNECT declaring 268 MB', Buffer.alloc(0), Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])],
      ['[MQTT-1.5.3-1] ill-formed UTF-8 in a PUBLISH topic', null, Buffer.from([0x30, 0x06, 0x00, 0x03, 0x61, 0xc3, 0x28, 0x78])],
      ['PUBLISH over max packet size', null, Buffer.concat([Buffer.from([0x30, 0x80, 0x80, 0x08]), Buffer.alloc(1000)])],
    ]
    for (const [name, preConnect, bytes] of cases) {
      const raw = await rawConnect(node.port)
      if (preConnect === null) {
        raw.send(connectPacket(`bad-${mode}`))
        await raw.next('connack')
      }
      raw.send(bytes)
      await raw.closed
      t.pass(`${name}: connection closed`)
    }
    t.ok(bystander.connected, 'the bystander is still connected')
    await bystander.publishAsync('x/y', 'z', { qos: 1 })
    const metrics = await node.metrics()
    t.match(metrics, /thingmesh_clients_rejected_total\{reason="too_large"\} [1-9]/, 'oversized packets counted in metrics')
    t.match(metrics, /thingmesh_clients_rejected_total\{reason="reserved_type"\} [1-9]/, 'reserved types counted in metrics')
    // The log reaches us through the child's stderr pipe, maybe after the metrics reply.
    await waitFor(() => /"event":"client.wire_violation".*"reason":"too_large"/.test(node.log()), 'the too_large log line')
    t.match(node.log(), /"event":"client.wire_violation".*"reason":"too_large"/, 'and logged')
    await close(bystander)
  })

  t.test(`${mode}: QoS is downgraded to the granted QoS for wildcard subscriptions [MQTT-3.8.4-6]`, async (t) => {
    const sub = await connect(node.port, { clientId: `dg-${mode}` })
    const got = collect(sub)
    await sub.subscribeAsync(`dg-${mode}/q1/#`, { qos: 1 })
    await sub.subscribeAsync(`dg-${mode}/q0/#`, { qos: 0 })
    const pub = await connect(node.port, { clientId: `dg-pub-${mode}` })
    await pub.publishAsync(`dg-${mode}/q0/r`, 'retained', { qos: 1, retain: true })
    await pub.publishAsync(`dg-${mode}/q1/a`, 'two', { qos: 2 })
    await pub.publishAsync(`dg-${mode}/q0/a`, 'one', { qos: 1 })
    await waitFor(() => got.length >= 3, 'deliveries')
    t.same(got.map((m) => [m.payload, m.qos]), [['retained', 0], ['two', 1], ['one', 0]], 'live messages at min(published, granted)')
    const late = await connect(node.port, { clientId: `dg-late-${mode}` })
    const lateGot = collect(late)
    await late.subscribeAsync(`dg-${mode}/q0/#`, { qos: 0 })
    await waitFor(() => lateGot.length >= 1, 'retained delivery')
    t.equal(lateGot[0].qos, 0, 'retained QoS1 delivered at QoS0 to a QoS0 wildcard subscriber')
    await close(sub, pub, late)
  })
}
