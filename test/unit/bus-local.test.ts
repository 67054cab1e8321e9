import t from 'tap'
import { createRequire } from 'node:module'
import { ClusterBus } from '../../broker/cluster/bus.ts'

/** The Qlobber mqemitter uses, so its matches can be counted. */
const fromMqemitter = createRequire(createRequire(import.meta.url).resolve('mqemitter'))
const { Qlobber } = fromMqemitter('qlobber') as { Qlobber: { prototype: { match(topic: string): unknown[] } } }

// Local delivery through the bus's mqemitter, whose listener matches are
// kept per topic (bus.ts, cacheMatches): every subscribe and unsubscribe
// must be seen by the next publish.

const packet = (topic: string) => ({ topic, payload: Buffer.from('x'), qos: 0 as const, retain: false, dup: false, brokerId: 'b', brokerCounter: 1 })
const emit = (bus: ClusterBus, topic: string): Promise<void> => new Promise((resolve, reject) => bus.emit(packet(topic), (err) => err ? reject(err) : resolve()))
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

t.test('subscribes and unsubscribes change the next publish\'s listeners; repeated topics are matched once', async (t) => {
  let matches = 0
  const inner = Qlobber.prototype.match
  Qlobber.prototype.match = function (this: unknown, topic: string) { matches++; return inner.call(this, topic) }
  t.teardown(() => { Qlobber.prototype.match = inner })
  const bus = new ClusterBus('self', null, null, 100)
  const got: string[] = []
  const wild = (p: { topic: string }, done: () => void): void => { got.push(`wild ${p.topic}`); done() }
  const exact = (p: { topic: string }, done: () => void): void => { got.push(`exact ${p.topic}`); done() }

  await emit(bus, 'a/1')
  bus.on('a/#', wild)
  await emit(bus, 'a/1')
  t.same(got, ['wild a/1'], 'a listener added after a publish on its topic gets the next one')
  const before = matches
  await emit(bus, 'a/1')
  await emit(bus, 'a/1')
  t.equal(matches, before, 'the same topic again: no new match')
  bus.on('a/1', exact)
  await emit(bus, 'a/1')
  t.same(got.slice(3).sort(), ['exact a/1', 'wild a/1'], 'a second listener is seen at once')
  bus.removeListener('a/#', wild)
  await turn() // mqemitter removes on the next turn
  got.length = 0
  await emit(bus, 'a/1')
  await emit(bus, 'a/2')
  t.same(got, ['exact a/1'], 'a removed listener gets nothing more')
  await new Promise<void>((resolve) => bus.close(resolve))
})
