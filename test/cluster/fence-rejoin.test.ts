import t, { type Test } from 'tap'
import mqtt from 'mqtt'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startNodeProcess, stopAll, type NodeProcess } from '../helpers/node.ts'
import { startProxy, type TcpProxy } from '../chaos/faults.ts'
import { close, collect, connect } from '../helpers/mqtt.ts'
import { waitFor } from '../helpers/wait.ts'

// A node cut off from Redis longer than --dead-after-ms is declared dead by
// the others (its clients' wills published by a survivor). When the link
// heals it finds itself fenced. By default (--on-fenced rejoin) it drops its
// clients and cluster state and comes back in the same process as a new
// incarnation; with --on-fenced exit it exits 3 for a supervisor.

t.setTimeout(300_000)

const DEAD_AFTER_MS = 3000
const ARGS = ['--heartbeat-ms', '500', '--dead-after-ms', String(DEAD_AFTER_MS)]

interface Setup { r: TestRedis, proxy: TcpProxy, ns: NodeProcess[], cut: NodeProcess, cutBroker: string }

/** Two nodes on Redis directly and node3 behind a TCP proxy we can black-hole. */
async function setUp (t: Test, extra: string[] = []): Promise<Setup> {
  const r = await startRedis()
  const proxy = await startProxy(r.port)
  const ns: NodeProcess[] = []
  t.teardown(async () => { await stopAll(ns); await proxy.close(); await r.stop() })
  for (let i = 1; i <= 2; i++) ns.push(await startNodeProcess({ redis: r.url, nodeId: `node${i}`, args: ARGS }))
  const cut = await startNodeProcess({ redis: `redis://127.0.0.1:${proxy.port}`, nodeId: 'node3', args: [...ARGS, ...extra] })
  ns.push(cut)
  await waitFor(async () => {
    for (const n of ns) if (((await n.health()).body.members as unknown[]).length !== 3) return false
    return true
  }, 'three members', 30_000, 50)
  return { r, proxy, ns: ns.slice(0, 2), cut, cutBroker: await brokerIdOf(cut) }
}

async function brokerIdOf (n: NodeProcess): Promise<string> {
  return (await n.health()).body.brokerId as string
}

async function memberIds (n: NodeProcess): Promise<string[]> {
  return ((await n.health()).body.members as Array<{ brokerId: string }>).map((m) => m.brokerId).sort()
}

/** Black-holes node3's Redis link (or, `starve`, stops the process) until a survivor has declared it dead. */
async function cutUntilReaped (s: Setup, how: 'cut' | 'starve' = 'cut'): Promise<void> {
  if (how === 'cut') s.proxy.set('drop')
  else process.kill(s.cut.proc.pid!, 'SIGSTOP')
  await waitFor(() => s.ns.some((n) => n.log().includes(s.cutBroker) && /"event":"cluster.node_dead"/.test(n.log())), 'node3 declared dead by a survivor', 20_000, 50)
}

/** Heals the link (the reset makes the node reconnect at once instead of at its watchdog's next verdict), or resumes the process. */
function heal (s: Setup, how: 'cut' | 'starve' = 'cut'): void {
  if (how === 'starve') { process.kill(s.cut.proc.pid!, 'SIGCONT'); return }
  s.proxy.set('pass')
  s.proxy.cut()
}

t.test('a fenced node rejoins as a new incarnation: no exit, new brokerId, routes both ways, sessions resume, wills once', async (t) => {
  const s = await setUp(t)
  const { cut, ns: [n1, n2] } = s

  const withWill = await connect(cut.port, { clientId: 'fr-will', will: { topic: 'fr/will', payload: Buffer.from('gone'), qos: 1, retain: false } })
  const persistent = await connect(cut.port, { clientId: 'fr-persist', clean: false })
  await persistent.subscribeAsync('fr/queued', { qos: 1 })
  const watcher = await connect(n1.port, { clientId: 'fr-watch' })
  const wills = collect(watcher)
  await watcher.subscribeAsync('fr/will', { qos: 1 })
  for (const c of [withWill, persistent]) c.on('close', () => {})

  const fencedAt = Date.now()
  await cutUntilReaped(s)
  await waitFor(() => wills.some((m) => m.payload === 'gone'), 'the will of node3\'s client, published by a survivor', 15_000)
  // Acknowledged for the persistent session while its node is dead.
  const pub = await connect(n2.port, { clientId: 'fr-pub' })
  for (let i = 0; i < 5; i++) await pub.publishAsync('fr/queued', `q${i}`, { qos: 1 })

  heal(s)
  await waitFor(() => /"event":"cluster.rejoined"/.test(cut.log()), 'node3 to log cluster.rejoined', 30_000, 50)
  const rejoined = JSON.parse(cut.log().split('\n').find((l) => l.includes('"event":"cluster.rejoined"'))!) as { brokerId: string, previous: string, tookMs: number }
  t.equal(cut.proc.exitCode, null, 'the process did not exit')
  t.match(cut.log(), /"event":"cluster.fenced"/, 'it logged that it was fenced')
  t.equal(rejoined.previous, s.cutBroker, 'cluster.rejoined names the fenced incarnation')
  t.not(rejoined.brokerId, s.cutBroker, 'with a new brokerId')
  t.ok(rejoined.brokerId.startsWith('node3~'), 'same node id, new incarnation')
  t.type(rejoined.tookMs, 'number', 'and how long the rejoin took')
  t.comment(`rejoin took ${rejoined.tookMs} ms (fence to new incarnation serving), ${Date.now() - fencedAt} ms from the cut to here`)
  t.ok(withWill.connected === false && persistent.connected === false, 'its clients were disconnected')

  await waitFor(async () => (await cut.health()).status === 200, 'node3 healthy again', 20_000)
  t.equal(await brokerIdOf(cut), rejoined.brokerId, '/healthz reports the new brokerId')
  await waitFor(async () => {
    const want = [await brokerIdOf(n1), await brokerIdOf(n2), rejoined.brokerId].sort()
    for (const n of [n1, n2, cut]) if ((await memberIds(n)).join() !== want.join()) return false
    return true
  }, 'every node to see exactly the three live incarnations', 20_000, 50)
  t.pass('three members, the fenced incarnation not among them')
  t.match(await cut.metrics(), /^thingmesh_cluster_rejoins_total 1$/m, 'the rejoin is counted')

  // QoS1 both ways between the rejoined node and one that never left.
  const onCut = await connect(cut.port, { clientId: 'fr-sub-cut' })
  const onN1 = await connect(n1.port, { clientId: 'fr-sub-n1' })
  const gotCut = collect(onCut)
  const gotN1 = collect(onN1)
  await onCut.subscribeAsync('fr/to-cut', { qos: 1 })
  await onN1.subscribeAsync('fr/to-n1', { qos: 1 })
  // Interest crosses nodes within one pub/sub hop of the SUBACK: wait for it instead of racing it.
  await waitFor(async () => { await pub.publishAsync('fr/to-cut', 'ping', { qos: 1 }); return gotCut.some((m) => m.payload === 'ping') }, 'n2 → node3 routing', 10_000, 200)
  const fromN1 = await connect(n1.port, { clientId: 'fr-pub-n1' })
  await fromN1.publishAsync('fr/to-cut', 'from-n1', { qos: 1 })
  await waitFor(() => gotCut.some((m) => m.payload === 'from-n1' && m.qos === 1), 'QoS1 node1 → node3', 10_000)
  await waitFor(async () => { await onCut.publishAsync('fr/to-n1', 'from-cut', { qos: 1 }); return gotN1.some((m) => m.payload === 'from-cut') }, 'QoS1 node3 → node1', 10_000, 200)
  t.ok(gotN1.every((m) => m.qos === 1), 'delivered at QoS1 on node1')
  t.pass('QoS1 routed both ways')

  // The persistent session that lived on the fenced incarnation, resumed on the new one.
  const again = mqtt.connect({ host: '127.0.0.1', port: cut.port, clientId: 'fr-persist', clean: false, reconnectPeriod: 0, protocolVersion: 4 })
  const queued: string[] = []
  let sessionPresent = false
  again.on('connect', (ack) => { sessionPresent = ack.sessionPresent })
  again.on('message', (topic, p) => { if (topic === 'fr/queued') queued.push(p.toString()) })
  await waitFor(() => queued.length >= 5, 'the 5 messages queued while its node was dead', 15_000)
  t.ok(sessionPresent, 'session present')
  t.same(queued, ['q0', 'q1', 'q2', 'q3', 'q4'], 'every acknowledged message, in order, once')

  t.equal(wills.filter((m) => m.payload === 'gone').length, 1, 'the will was published once (by the survivor, not again by the rejoined node)')
  t.notMatch(cut.log(), /"event":"node.unhandled_rejection"/, 'no unhandled rejection during the teardown')
  await close(withWill, persistent, watcher, pub, fromN1, onCut, onN1, again)
})

// A node whose event loop stalls past dead-after (SIGSTOP stands for a starved
// host) cannot be told from a dead one; when it runs again it rejoins the same way.
t.test('a starved node (SIGSTOP past dead-after) rejoins as a new incarnation', async (t) => {
  const s = await setUp(t)
  await cutUntilReaped(s, 'starve')
  heal(s, 'starve')
  await waitFor(() => /"event":"cluster.rejoined"/.test(s.cut.log()), 'node3 to log cluster.rejoined', 30_000, 50)
  const rejoined = JSON.parse(s.cut.log().split('\n').find((l) => l.includes('"event":"cluster.rejoined"'))!) as { brokerId: string, tookMs: number }
  t.equal(s.cut.proc.exitCode, null, 'the process did not exit')
  t.not(rejoined.brokerId, s.cutBroker, 'new brokerId')
  t.comment(`rejoin took ${rejoined.tookMs} ms`)
  await waitFor(async () => (await memberIds(s.ns[0])).includes(rejoined.brokerId) && (await memberIds(s.ns[0])).length === 3, 'three members, the new incarnation among them', 20_000)
  const sub = await connect(s.cut.port, { clientId: 'st-sub' })
  const got = collect(sub)
  await sub.subscribeAsync('st/t', { qos: 1 })
  const pub = await connect(s.ns[0].port, { clientId: 'st-pub' })
  await waitFor(async () => { await pub.publishAsync('st/t', 'x', { qos: 1 }); return got.length > 0 }, 'QoS1 node1 → node3', 10_000, 200)
  await close(sub, pub)
})

t.test('--on-fenced exit: the fenced node exits 3, also once the reaper has forgotten it', async (t) => {
  const s = await setUp(t, ['--on-fenced', 'exit'])
  await cutUntilReaped(s)
  // The reaper forgets a dead node once its wills are out; only `gone` still remembers it.
  const direct = s.r.client()
  await waitFor(async () => (await direct.sismember('tm:{thingmesh}:dead', s.cutBroker)) === 0, 'the reaper to finish with node3', 10_000)
  heal(s)
  const code = await Promise.race([s.cut.exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 20_000))])
  t.equal(code, 3, 'exited with status 3')
  t.match(s.cut.log(), /"event":"node.exit_fenced"/, 'logged node.exit_fenced')
  t.notMatch(s.cut.log(), /"event":"cluster.rejoined"/, 'did not rejoin')
  await waitFor(async () => (await memberIds(s.ns[0])).length === 2, 'two members left', 20_000)
})
