import t from 'tap'
import { expandTopic, patternToFilter, topicMatches } from '../topic.ts'
import { fleetPayload, notificationMarks } from '../fleet-payload.ts'

t.test('patterns expand and turn into filters', async (t) => {
  t.equal(expandTopic('a/{clientId}/{n}', { clientId: 'c1', n: 3 }), 'a/c1/3')
  t.equal(patternToFilter('things/{thingId}/properties/{name}'), 'things/+/properties/+')
})

t.test('MQTT topic matching', async (t) => {
  t.ok(topicMatches('a/+/c', 'a/b/c'))
  t.ok(topicMatches('a/#', 'a'))
  t.ok(topicMatches('a/#', 'a/b/c'))
  t.notOk(topicMatches('a/+', 'a/b/c'))
  t.notOk(topicMatches('+/x', '$SYS/x'), '[MQTT-4.7.2-1]')
  t.notOk(topicMatches('#', '$admin/things/put'))
  t.ok(topicMatches('$admin/#', '$admin/things/put'))
})

t.test('fleet marks are found at any depth of a state document', async (t) => {
  const v = JSON.parse(fleetPayload(7, 123).toString())
  t.equal(v.seq, 7)
  const doc = { thingId: 'x', state: { temperature: v, battery: { value: 3, seq: 5, ts: 100 } } }
  t.same(notificationMarks(Buffer.from(JSON.stringify(doc))), [
    { seq: 5, tsUs: 100 },
    { seq: 7, tsUs: 123 },
  ])
  t.same(notificationMarks(Buffer.from('not json')), [])
})
