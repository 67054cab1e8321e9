import t from 'tap'
import mqtt from 'mqtt'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, connect as tcpConnect, type Socket } from 'node:net'
import { freePort } from '../helpers/ports.ts'
import { startRedis } from '../helpers/redis.ts'
import { startNodeProcess, stopAll, type NodeProcess } from '../helpers/node.ts'
import { close, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(120_000)

/**
 * A TCP proxy to Redis that goes silent (no FIN, no RST: a stalled Redis, as
 * seen by that one connection) from the first command it carries that matches
 * `trap`. Later connections pass, so the node's watchdog reconnect recovers.
 */
async function startTrapProxy (targetPort: number, trap: (chunk: Buffer) => boolean): Promise<{ port: number, sprung: () => boolean, close: () => void }> {
  const port = await freePort()
  const sockets = new Set<Socket>()
  let sprung = false
  const server = createServer((client) => {
    const upstream = tcpConnect(targetPort, '127.0.0.1')
    sockets.add(client); sockets.add(upstream)
    let silent = false
    const end = (): void => { client.destroy(); upstream.destroy(); sockets.delete(client); sockets.delete(upstream) }
    client.on('error', end); upstream.on('error', end); client.on('close', end); upstream.on('close', end)
    client.on('data', (chunk: Buffer) => {
      if (!silent && !sprung && trap(chunk)) { silent = true; sprung = true }
      if (!silent) upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => { if (!silent) client.write(chunk) })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return { port, sprung: () => sprung, close: () => { for (const s of sockets) s.destroy(); server.close() } }
}

// The crash, deterministically: aedes' CONNECT handler runs
// `persistence.delWill(client).finally(...)`, and the promise .finally()
// returns rejects like delWill; aedes never handles it. The old will is now
// deleted by the CONNECT's session claim (claimSessions-7.lua), so here the
// Redis link goes silent exactly when that script is sent: it fails with
// "Command timed out", and neither it nor anything after it may go unhandled.
t.test('Redis silent while a CONNECT claims its session and deletes the old will: the node survives and recovers', async (t) => {
  const r = await startRedis()
  const lua = readFileSync(new URL('../../broker/cluster/lua/claimSessions-7.lua', import.meta.url), 'utf8')
  const sha = createHash('sha1').update(lua).digest('hex')
  const victimId = 'stall-trap-victim'
  const proxy = await startTrapProxy(r.port, (chunk) => {
    const s = chunk.toString('latin1')
    return s.includes(victimId) && (s.includes(sha) || s.includes(lua.slice(-40)))
  })
  const node = await startNodeProcess({ redis: `redis://127.0.0.1:${proxy.port}`, nodeId: 'trap1', args: ['--redis-command-timeout-ms', '1000'] })
  t.teardown(async () => { await stopAll([node]); proxy.close(); await r.stop() })

  const victim = mqtt.connect(`mqtt://127.0.0.1:${node.port}`, {
    clientId: victimId, clean: false, reconnectPeriod: 0, connectTimeout: 10_000,
    will: { topic: 'stall/trap/will', payload: Buffer.from('w'), qos: 1, retain: false },
  })
  victim.on('error', () => {})
  await waitFor(() => proxy.sprung(), 'the session claim of the CONNECT reaching Redis', 20_000)
  // The command timeout passes, the watchdog replaces the silent link.
  await waitFor(() => /"event":"redis.reconnect_silent"/.test(node.log()) || node.proc.exitCode !== null, 'the silent link replaced (or the node dead)', 20_000)
  await waitFor(async () => node.proc.exitCode !== null || (await node.health()).status === 200, 'healthy again', 20_000)
  t.equal(node.proc.exitCode, null, 'the node is running')
  t.notMatch(node.log(), /Command timed out\n|unhandled_rejection|"level":60/, 'no crash logged')
  // Service goes on: a client with a will connects and its will is stored.
  const again = await connect(node.port, { clientId: 'stall-trap-after', clean: false, will: { topic: 'stall/trap/will', payload: Buffer.from('x'), qos: 1, retain: false } })
  t.ok(again.connected, 'a new client connects after the stall')
  await close(again)
  victim.end(true)
})

// Defect (chaos R12 at high load): since commands wait in the offline queue
// with the command timeout as their only bound, a Redis that stops answering
// makes every pending command reject with "Command timed out" at once. One of
// them had no handler; Node 20 exits on an unhandled rejection, so nodes died
// after client.claim_failed / session.release_failed / will.reap_failed.
// Here Redis is paused (SIGSTOP) for three command timeouts while clients
// connect and leave (persistent sessions, wills), publish, and a peer that
// was killed is waiting to be reaped; the surviving nodes must live through it.
t.test('Redis paused past the command timeout under light activity: nodes stay up and recover', async (t) => {
  const commandTimeoutMs = 1000
  const args = ['--heartbeat-ms', '500', '--dead-after-ms', '3000', '--redis-command-timeout-ms', String(commandTimeoutMs)]
  const r = await startRedis()
  const nodes: NodeProcess[] = []
  for (let i = 1; i <= 3; i++) nodes.push(await startNodeProcess({ redis: r.url, nodeId: `stall${i}`, args }))
  t.teardown(async () => {
    try { process.kill(r.proc.pid!, 'SIGCONT') } catch { /* gone */ }
    await stopAll(nodes)
    await r.stop()
  })
  const [A, B, victim] = nodes
  await waitFor(async () => ((await A.health()).body.members as unknown[]).length === 3, 'three members', 30_000, 50)
  // A client with a will on the node that dies, so its will is being reaped while Redis stalls.
  const doomed = await connect(victim.port, { clientId: 'stall-doomed', clean: false, will: { topic: 'stall/will', payload: Buffer.from('gone'), qos: 1, retain: false } })
  doomed.on('error', () => {})
  const held = await connect(B.port, { clientId: 'stall-held', clean: false })
  await held.subscribeAsync('stall/#', { qos: 1 })

  // Light activity, bounded: persistent clients (with wills) that connect and
  // leave, and QoS 0/1 publishes, on both surviving nodes.
  let stop = false
  let rounds = 0
  const loop = async (port: number, tag: string): Promise<void> => {
    for (let i = 0; i < 200 && !stop; i++) {
      rounds++
      const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
        clientId: `stall-${tag}-${i % 5}`, clean: false, reconnectPeriod: 0, connectTimeout: 3000,
        will: { topic: `stall/will/${tag}`, payload: Buffer.from('w'), qos: 1, retain: false },
      })
      c.on('error', () => {})
      await new Promise<void>((resolve) => { c.once('connect', () => resolve()); c.once('close', () => resolve()) })
      if (c.connected) {
        c.publish(`stall/${tag}`, String(i), { qos: 1 })
        c.publish(`stall/${tag}/0`, String(i), { qos: 0 })
        await settled(c, c.subscribeAsync(`stall/${tag}/${i}`, { qos: 1 }))
      }
      // Half leave cleanly, half drop (their will is published, their release races the stall).
      if (i % 2 === 0) await settled(c, c.endAsync())
      else { c.stream.destroy(); await settled(c, c.endAsync(true)) }
    }
  }
  // mqtt.js never settles a persistent client's pending SUBSCRIBE or
  // graceful end once the connection is gone without reconnecting (it keeps
  // them for a resend): a connection the broker closed during the stall would
  // hang the loop. Each step ends when it settles, the client closes, or 5 s.
  const settled = async (c: mqtt.MqttClient, p: Promise<unknown>): Promise<void> => {
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      p.catch(() => {}),
      new Promise<void>((resolve) => { if (c.disconnected || !c.connected) resolve(); c.once('close', () => resolve()) }),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, 5000) }),
    ])
    clearTimeout(timer)
  }
  const activity = Promise.all([loop(A.port, 'a'), loop(B.port, 'b')])
  await waitFor(() => rounds >= 10, 'activity under way', 20_000)

  await victim.kill('SIGKILL')
  const pausedAt = Date.now()
  process.kill(r.proc.pid!, 'SIGSTOP')
  for (const n of [A, B]) await waitFor(async () => (await n.health()).status === 503, `${n.nodeId} reports 503 while Redis is paused`, 10_000)
  // Three command timeouts: everything queued or in flight times out, several times over.
  await waitFor(() => Date.now() - pausedAt >= 3 * commandTimeoutMs + 500, 'pause length', 20_000, 50)
  t.equal(A.proc.exitCode, null, 'A survived the pause')
  process.kill(r.proc.pid!, 'SIGCONT')

  for (const n of [A, B]) await waitFor(async () => (await n.health()).status === 200, `${n.nodeId} healthy again`, 20_000)
  stop = true
  await activity
  // The peer that died meanwhile is still reaped once Redis is back (its will goes out).
  await waitFor(() => [A, B].some((n) => /"event":"will.published_for_dead_node".*stall-doomed/.test(n.log())), 'the dead node\'s will published', 20_000)
  const c = await connect(A.port, { clientId: 'stall-after', clean: false })
  await c.publishAsync('stall/after', 'after', { qos: 1 })
  for (const n of [A, B]) {
    t.equal(n.proc.exitCode, null, `${n.nodeId} is running`)
    t.equal(n.proc.signalCode, null, `${n.nodeId} was not killed`)
    t.notMatch(n.log(), /Command timed out\n|unhandled|"level":60/i, `${n.nodeId} logged no crash`)
    t.equal((await n.health()).status, 200, `${n.nodeId} healthy`)
  }
  t.ok(rounds >= 10, `activity ran (${rounds} connect rounds)`)
  await close(c, held)
  doomed.end(true)
})
