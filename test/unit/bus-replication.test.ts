import t from 'tap'
import { ClusterBus, type BusIo } from '../../broker/cluster/bus.ts'
import type { BusPacket } from '../../broker/cluster/codec.ts'

// The replication barrier (--redis-wait-replicas): Redis WAIT blocks the
// command connection until it returns, so the bus must never queue a second
// WAIT behind one in flight; QoS1 completions arriving meanwhile share the next.

function packet (n: number): BusPacket & { cmd: string } {
  return { cmd: 'publish', topic: `t/${n}`, payload: Buffer.from(String(n)), qos: 1, retain: false, dup: false, brokerId: 'b1', brokerCounter: n }
}

t.test('one WAIT in flight; completions during it share the next one', async (t) => {
  let inFlight = 0
  let maxInFlight = 0
  let calls = 0
  const pending: Array<() => void> = []
  const io: BusIo = {
    publish: async () => {},
    announce: async () => {},
    replicated: () => new Promise<void>((resolve) => {
      calls++
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      pending.push(() => { inFlight--; resolve() })
    }),
  }
  const bus = new ClusterBus('b1', io, null, 100)
  const acked: number[] = []
  const emit = (n: number): void => bus.emit(packet(n), (err) => { if (!err) acked.push(n) })

  emit(1)
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(calls, 1, 'the first completion started a WAIT')
  // Three more publishes over several turns while the first WAIT is out.
  for (const n of [2, 3, 4]) {
    emit(n)
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(calls, 1, 'no second WAIT while one is in flight')
  t.same(acked, [], 'nothing acknowledged before its WAIT returned')

  pending.shift()!()
  await new Promise((resolve) => setImmediate(resolve))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(acked, [1], 'the first WAIT acknowledged only what it covered')
  t.equal(calls, 2, 'the waiting completions share one follow-up WAIT')
  pending.shift()!()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(acked.sort(), [1, 2, 3, 4], 'all acknowledged once their WAIT returned')
  t.equal(maxInFlight, 1, 'never more than one WAIT at a time')
})

t.test('a failed WAIT fails exactly the completions it covered', async (t) => {
  let fail = true
  const io: BusIo = {
    publish: async () => {},
    announce: async () => {},
    replicated: async () => { if (fail) { fail = false; throw new Error('only 0 of 1 replicas') } },
  }
  const bus = new ClusterBus('b1', io, null, 100)
  const results: string[] = []
  await new Promise<void>((resolve) => bus.emit(packet(1), (err) => { results.push(err ? 'failed' : 'ok'); resolve() }))
  await new Promise<void>((resolve) => bus.emit(packet(2), (err) => { results.push(err ? 'failed' : 'ok'); resolve() }))
  t.same(results, ['failed', 'ok'], 'the shortfall is reported to its publish only; the next WAIT starts fresh')
})
