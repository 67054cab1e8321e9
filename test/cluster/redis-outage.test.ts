import t from 'tap'
import { startRedis } from '../helpers/redis.ts'
import { startCluster, startNodeProcess, stopAll, type NodeProcess } from '../helpers/node.ts'
import { startProxy } from '../chaos/faults.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

t.setTimeout(300_000)

/** Like startCluster, with room for a loaded machine (the fault tests below need every member first). */
async function startMembers (url: string, n: number, args: string[]): Promise<NodeProcess[]> {
  const ns: NodeProcess[] = []
  for (let i = 1; i <= n; i++) ns.push(await startNodeProcess({ redis: url, nodeId: `node${i}`, args }))
  await waitFor(async () => {
    for (const x of ns) if (((await x.health()).body.members as unknown[]).length !== n) return false
    return true
  }, `${n} members`, 30_000, 50)
  return ns
}

// Guarantee 6: Redis goes away and comes back. Nodes keep their clients,
// answer 503 meanwhile, refuse what they cannot make durable, and recover.
const redis = await startRedis()
const nodes = await startCluster(redis.url, 2)
t.teardown(async () => { await stopAll(nodes); await redis.stop() })
const [A, B] = nodes

t.test('Redis restart: 503 while gone, clients kept, QoS1 refused not acked, service resumes', async (t) => {
  const pub = await connect(A.port, { clientId: 'out-pub' })
  const localSub = await connect(A.port, { clientId: 'out-local' })
  const remoteSub = await connect(B.port, { clientId: 'out-remote' })
  const gotLocal = collect(localSub)
  const gotRemote = collect(remoteSub)
  await localSub.subscribeAsync('out/#', { qos: 0 })
  await remoteSub.subscribeAsync('out/#', { qos: 1 })

  await redis.kill('SIGKILL')
  for (const n of nodes) {
    await waitFor(async () => (await n.health()).status === 503, `${n.nodeId} reports 503`, 10_000)
  }
  t.ok(localSub.connected && remoteSub.connected && pub.connected, 'clients stay connected while Redis is down')

  pub.publish('out/local', 'during-outage', { qos: 0 })
  await waitFor(() => gotLocal.some((m) => m.payload === 'during-outage'), 'same-node QoS0 delivery during the outage')
  t.pass('same-node QoS0 keeps flowing without Redis')

  // A QoS1 publish that cannot reach Redis must not be acknowledged.
  const qos1 = await connect(A.port, { clientId: 'out-qos1' }).catch(() => null)
  t.equal(qos1, null, 'a new connection is refused while the session registry is unreachable')
  let acked = false
  pub.publish('out/q1', 'must-not-ack', { qos: 1 }, (err) => { if (!err) acked = true })
  await waitFor(() => !pub.connected, 'publisher disconnected instead of acked', 10_000)
  t.equal(acked, false, 'QoS1 publish during the outage was not acknowledged')

  await redis.restart()
  for (const n of nodes) {
    await waitFor(async () => (await n.health()).status === 200, `${n.nodeId} healthy again`, 15_000)
  }
  t.equal(A.proc.exitCode, null, 'node A never exited')
  t.equal(B.proc.exitCode, null, 'node B never exited')

  // The restarted Redis is empty: each node re-learns the other from its next heartbeat, and
  // routes to it only from then on.
  for (const n of nodes) await waitFor(async () => ((await n.health()).body.members as unknown[]).length === 2, `${n.nodeId} sees both members again`, 15_000)
  const pub2 = await connect(A.port, { clientId: 'out-pub2' })
  await pub2.publishAsync('out/after', 'after', { qos: 1 })
  await waitFor(() => gotRemote.some((m) => m.payload === 'after'), 'cross-node delivery after recovery').catch((err: Error) => {
    // Diagnostics for a flake seen once in 4 runs: the nodes' warnings around the recovery.
    for (const n of nodes) t.comment(`${n.nodeId}:\n` + n.log().split('\n').filter((l) => /"level":[4-6]0|interest|pubsub/.test(l)).slice(-40).join('\n'))
    throw err
  })
  t.ok(remoteSub.connected, 'the remote subscriber kept its connection through the outage')
  t.match(A.log(), /"event":"redis.down"/, 'the outage was logged')
  t.match(A.log(), /"event":"redis.up".*"outageMs":\d+/, 'the recovery was logged with the outage length')
  await close(pub, pub2, localSub, remoteSub)
})

// Issue 7 defect: after Redis was unreachable for longer than --dead-after-ms,
// the first node back found every peer silent and declared them dead (their
// wills published, the nodes fenced and exited). A node now reaps only after
// its own link has been up for dead-after (and, in Redis time, only if its own
// previous beat is recent). A node that really died meanwhile is still reaped.
t.test('Redis paused longer than dead-after: no live node declared dead, a killed one is', async (t) => {
  const deadAfterMs = 3000
  const args = ['--heartbeat-ms', '500', '--dead-after-ms', String(deadAfterMs)]
  const r = await startRedis()
  const ns = await startMembers(r.url, 4, args)
  const upAt = Date.now()
  t.teardown(async () => {
    try { process.kill(r.proc.pid!, 'SIGCONT') } catch { /* gone */ }
    await stopAll(ns)
    await r.stop()
  })
  const live = ns.slice(0, 3)
  const victim = ns[3]
  const members = (await live[0].health()).body.members as Array<{ nodeId: string, brokerId: string }>
  const brokerOf = (nodeId: string): string => members.find((m) => m.nodeId === nodeId)!.brokerId
  // The nodes' links must have been up for dead-after before the pause, so that reaping was allowed when it began.
  await waitFor(() => Date.now() - upAt >= 2 * deadAfterMs, 'links up for dead-after', 20_000, 50)

  const pausedAt = Date.now()
  process.kill(r.proc.pid!, 'SIGSTOP')
  await victim.kill('SIGKILL')
  for (const n of live) await waitFor(async () => (await n.health()).status === 503, `${n.nodeId} reports 503 while Redis is paused`, 10_000)
  // The fault itself: Redis must stay away longer than dead-after (twice, to leave no doubt).
  await waitFor(() => Date.now() - pausedAt >= 2 * deadAfterMs, 'pause length', 20_000, 50)
  process.kill(r.proc.pid!, 'SIGCONT')

  const victimBroker = brokerOf(victim.nodeId)
  await waitFor(() => live.some((n) => n.log().includes(victimBroker) && /"event":"cluster.node_dead"/.test(n.log())), 'the killed node to be declared dead', 20_000, 50)
  for (const n of live) await waitFor(async () => (await n.health()).status === 200, `${n.nodeId} healthy again`, 15_000)
  await waitFor(async () => ((await live[0].health()).body.members as unknown[]).length === 3, 'three members', 30_000)
  for (const n of live) {
    const dead = n.log().split('\n').filter((l) => l.includes('"event":"cluster.node_dead"'))
    for (const m of live) t.notOk(dead.some((l) => l.includes(brokerOf(m.nodeId))), `${n.nodeId} did not declare live ${m.nodeId} dead`)
    t.notMatch(n.log(), /"event":"node.exit_fenced"|"event":"cluster.fenced"/, `${n.nodeId} was not fenced`)
    t.equal(n.proc.exitCode, null, `${n.nodeId} is running`)
  }
})

// A node cut off from Redis (a black hole, no FIN/RST) longer than
// dead-after is declared dead by the others and its clients' wills are
// published. When the link heals it must not be re-admitted with the state
// the reaper deleted (its interest set, its wills), even after the reaper
// finished and forgot it: it is fenced (drops its clients; with --on-fenced
// exit, as here, it exits 3; the default rejoin is in fence-rejoin.test.ts).
t.test('a node reaped while cut off is fenced when it comes back, also after its wills were published', async (t) => {
  const deadAfterMs = 3000
  const args = ['--heartbeat-ms', '500', '--dead-after-ms', String(deadAfterMs)]
  const r = await startRedis()
  const proxy = await startProxy(r.port)
  const ns = await startMembers(r.url, 2, args)
  const cut = await startNodeProcess({ redis: `redis://127.0.0.1:${proxy.port}`, nodeId: 'node3', args: [...args, '--on-fenced', 'exit'] })
  t.teardown(async () => { await stopAll([...ns, cut]); await proxy.close(); await r.stop() })
  await waitFor(async () => ((await ns[0].health()).body.members as unknown[]).length === 3, 'three members', 30_000)
  const cutBroker = ((await cut.health()).body.members as Array<{ nodeId: string, brokerId: string }>).find((m) => m.nodeId === 'node3')!.brokerId
  const withWill = await connect(cut.port, { clientId: 'fence-will', will: { topic: 'fence/will', payload: Buffer.from('gone'), qos: 1, retain: false } })
  const watcher = await connect(ns[0].port, { clientId: 'fence-watch' })
  const got = collect(watcher)
  await watcher.subscribeAsync('fence/will', { qos: 1 })

  proxy.set('drop')
  await waitFor(() => got.some((m) => m.payload === 'gone'), 'the cut node\'s client will, published by a survivor', 15_000)
  const direct = r.client()
  // The reaper forgets a dead node once its wills are out; only `gone` still remembers it.
  await waitFor(async () => (await direct.sismember('tm:{thingmesh}:dead', cutBroker)) === 0, 'the reaper to finish with the cut node', 10_000)
  proxy.set('pass')
  proxy.cut()
  const code = await Promise.race([cut.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 15_000))])
  t.equal(code, 3, 'the node exited with status 3 (fenced) instead of rejoining')
  t.match(cut.log(), /"event":"node.exit_fenced"/, 'logged as fenced')
  t.equal(got.filter((m) => m.payload === 'gone').length, 1, 'the will was published once')
  await waitFor(async () => ((await ns[0].health()).body.members as unknown[]).length === 2, 'two members', 30_000)
  t.equal((await ns[1].health()).status, 200, 'the other nodes are healthy')
  await close(withWill, watcher)
})
