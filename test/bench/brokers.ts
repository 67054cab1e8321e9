import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startRedis, type TestRedis } from '../helpers/redis.ts'
import { startNodeProcess, type NodeProcess } from '../helpers/node.ts'
import { freePort } from '../helpers/ports.ts'
import { waitFor } from '../helpers/wait.ts'
import { connect } from '../helpers/mqtt.ts'

/** A broker under test: one or more MQTT ports, and how to stop it. */
export interface BrokerUnderTest {
  name: string
  ports: number[]
  pids: number[]
  stop(): Promise<void>
}

/** Benchmarks measure the broker, not its abuse limits. */
const NO_LIMITS = ['--log-level', 'warn', '--publish-rate-per-client', '0', '--connect-rate-per-ip', '0', '--max-connections-per-ip', '0', '--max-connections', '0']

export async function standalone (): Promise<BrokerUnderTest> {
  const n = await startNodeProcess({ args: NO_LIMITS })
  return { name: 'thingmesh standalone', ports: [n.port], pids: [n.proc.pid!], stop: async () => { await n.kill('SIGKILL') } }
}

export async function cluster (size: number): Promise<BrokerUnderTest> {
  const redis: TestRedis = await startRedis()
  const nodes: NodeProcess[] = []
  for (let i = 0; i < size; i++) nodes.push(await startNodeProcess({ redis: redis.url, nodeId: `b${i + 1}`, args: [...NO_LIMITS, '--allow-anonymous', 'true'] }))
  return {
    name: `thingmesh ${size}-node`,
    ports: nodes.map((n) => n.port),
    pids: nodes.map((n) => n.proc.pid!),
    stop: async () => { await Promise.all(nodes.map((n) => n.kill('SIGKILL'))); await redis.stop() },
  }
}

export function mosquittoPath (): string | null {
  for (const p of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto']) {
    if (spawnSync('test', ['-x', p]).status === 0) return p
  }
  return null
}

export async function mosquitto (): Promise<BrokerUnderTest | null> {
  const bin = mosquittoPath()
  if (!bin) return null
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'tm-mosq-'))
  const conf = join(dir, 'm.conf')
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n`)
  const proc: ChildProcess = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  await waitFor(async () => { try { (await connect(port)).end(true); return true } catch { return false } }, 'mosquitto', 5000)
  return {
    name: 'mosquitto',
    ports: [port],
    pids: [proc.pid!],
    stop: async () => { proc.kill('SIGKILL'); await new Promise((r) => proc.once('exit', r)) },
  }
}
