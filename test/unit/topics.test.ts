import t from 'tap'
import { filterProblem, isReserved, matches, topicLevels, topicProblem } from '../../broker/mqtt/topics.ts'

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

/** The rule as MQTT 4.7 states it, level by level on split strings: the reference for the walking matcher. */
function byLevels (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

t.test('the matcher agrees with the level-by-level rule on every small filter and topic', async (t) => {
  const levels = ['', 'a', 'b', 'ab', '$x', 'ü']
  const topics: string[] = []
  const grow = (prefix: string[], depth: number): void => {
    if (prefix.length > 0) topics.push(prefix.join('/'))
    if (depth > 0) for (const l of levels) grow([...prefix, l], depth - 1)
  }
  grow([], 3)
  const filters = new Set<string>()
  for (const topic of topics) {
    const ls = topic.split('/')
    filters.add(topic)
    for (let i = 0; i < ls.length; i++) {
      filters.add([...ls.slice(0, i), '+', ...ls.slice(i + 1)].join('/'))
      filters.add([...ls.slice(0, i), '#'].join('/'))
      filters.add([...ls.slice(0, i), '+', '#'].join('/'))
    }
  }
  let compared = 0
  let disagreements = 0
  for (const f of filters) {
    for (const topic of topics) {
      compared++
      if (matches(f, topic) !== byLevels(f, topic)) { if (disagreements++ < 5) t.fail(`'${f}' vs '${topic}': ${matches(f, topic)}`) }
    }
  }
  t.equal(disagreements, 0, `${compared} pairs compared`)
})

t.test('topicLevels counts what splitting on / would give', async (t) => {
  for (const topic of ['', 'a', '/', 'a/b', 'a//b', '/a/', 'things/s1/properties/p0', '////']) {
    t.equal(topicLevels(topic), topic.split('/').length, JSON.stringify(topic))
  }
})
