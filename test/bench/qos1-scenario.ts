import { connect, type MqttClient } from '../helpers/mqtt.ts'
import type { BrokerUnderTest } from './brokers.ts'
import { closeQuietly } from './quiet-close.ts'

export interface Qos1Options {
  messages: number
  /** Gives up after this long (the run counts what arrived). */
  timeoutMs: number
  /** Client ids are `${clientPrefix}-sub` and `${clientPrefix}-pub-<i>`. */
  clientPrefix: string
  payload: Buffer
}

/**
 * The qos1 scenario of `npm run bench` (cluster.ts), also run by
 * qos1-probe.ts: 10 publishers spread over the broker's ports, each with 10
 * windows of one QoS1 publish awaiting its PUBACK, to one QoS1 wildcard
 * subscriber on the last port. Rate = messages delivered per second.
 */
export async function qos1Stream (b: BrokerUnderTest, o: Qos1Options): Promise<{ rate: number, received: number, timedOut: boolean }> {
  const ports = b.ports
  const sub = await connect(ports.at(-1)!, { clientId: `${o.clientPrefix}-sub` })
  await sub.subscribeAsync('bench/q1/#', { qos: 1 })
  const pubs: MqttClient[] = []
  for (let i = 0; i < 10; i++) pubs.push(await connect(ports[i % ports.length], { clientId: `${o.clientPrefix}-pub-${i}` }))
  let received = 0
  let resolveDone = (): void => {}
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  sub.on('message', () => { if (++received >= o.messages) resolveDone() })
  const perWindow = Math.ceil(o.messages / 100)
  let stop = false
  const start = performance.now()
  const sending = Promise.all(pubs.flatMap((p, i) => Array.from({ length: 10 }, async () => {
    for (let k = 0; k < perWindow && !stop; k++) await p.publishAsync(`bench/q1/${i}`, o.payload, { qos: 1 })
  })))
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), o.timeoutMs).unref())
  const outcome = await Promise.race([Promise.all([done, sending]), timer])
  const elapsed = performance.now() - start
  stop = true
  await closeQuietly(sub, ...pubs)
  return { rate: received / (elapsed / 1000), received, timedOut: outcome === 'timeout' }
}
