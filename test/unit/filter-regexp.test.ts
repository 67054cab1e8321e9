import t from 'tap'
import { filterRegExp } from '../../broker/persistence/filter-regexp.ts'
import { matches } from '../../broker/mqtt/topics.ts'

const filters = ['#', '+', 'a', 'a/#', 'a/+', '+/b', '+/+', 'a/+/c', '+/b/#', 'a/b/c/#', '/+', '+/', 'a//#', 'x.y/(z)/[q]/#', 'd$/^e|f', 'a/b/+/#']
const topics = ['a', 'b', 'a/b', 'a/b/c', 'a/b/c/d', 'a/', '/a', '/', 'x/b', 'x/b/y', 'a//c', 'a/x/c', 'ab', 'a/bc', 'x.y/(z)/[q]', 'xzy/(z)/[q]/r', 'x.y/(z)/[q]/r/s', 'd$/^e|f', 'd$/^e', 'a/b/c/', 'a/b/', 'a/b/x', 'a/line\nbreak', 'line\nbreak/b']

t.test('each filter matches exactly what topics.ts matches() says', async (t) => {
  for (const f of filters) {
    const re = filterRegExp([f])
    for (const topic of topics) t.equal(re.test(topic), matches(f, topic), `${f} vs ${topic}`)
  }
})

t.test('several filters: any of them', async (t) => {
  const re = filterRegExp(['a/+/c', 'x/#'])
  t.same(topics.filter((s) => re.test(s)), topics.filter((s) => matches('a/+/c', s) || matches('x/#', s)))
})
