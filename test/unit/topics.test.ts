import t from 'tap'
import { filterProblem, isReserved, matches, topicProblem } from '../../broker/mqtt/topics.ts'

t.test('filters', async (t) => {
  for (const ok of ['a', 'a/b', '#', '+', 'a/+/c', 'a/#', '+/+/#', '/', 'a//b', '$SYS/#']) t.equal(filterProblem(ok), null, ok)
  for (const bad of ['', 'a#', 'a/#/b', '#/a', 'a+', 'a/b+/c', 'nul\u0000']) t.type(filterProblem(bad), 'string', bad)
})

t.test('topics', async (t) => {
  t.equal(topicProblem('a/b'), null)
  for (const bad of ['', 'a/+', 'a/#', 'x\u0000']) t.type(topicProblem(bad), 'string', bad)
})

t.test('reserved namespaces', async (t) => {
  for (const r of ['$SYS', '$SYS/x', '$admin/clients/kick', '$admin']) t.ok(isReserved(r), r)
  for (const r of ['SYS/x', '$sys2/x', 'admin/x', '$adminx']) t.notOk(isReserved(r), r)
})

t.test('matching follows MQTT 4.7', async (t) => {
  t.ok(matches('a/#', 'a'), 'a/# matches its parent [MQTT-4.7.1-2]')
  t.ok(matches('a/+', 'a/'), '+ matches an empty level')
  t.ok(matches('+/+', '/x'))
  t.notOk(matches('#', '$SYS/x'), 'first-level # never matches $ topics [MQTT-4.7.2-1]')
  for (const topic of ['a', 'a/b/c', '/', 'a//b', 'line\nbreak']) t.ok(matches('#', topic), `# matches ${topic}`)
  t.notOk(matches('+/x', '$SYS/x'))
  t.ok(matches('$SYS/#', '$SYS/x'))
  t.notOk(matches('a/+', 'a/b/c'))
  t.ok(matches('a/b', 'a/b'))
  t.notOk(matches('a/b', 'a/b/c'))
})
