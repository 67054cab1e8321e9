import t from 'tap'
import { literalPrefix } from '../../broker/persistence/redis-persistence.ts'

t.test('a wildcard filter reads only the index range of its literal levels', async (t) => {
  t.equal(literalPrefix('a/b/#'), 'a/b/')
  t.equal(literalPrefix('a/+/c'), 'a/')
  t.equal(literalPrefix('things/dev1/+'), 'things/dev1/')
  t.equal(literalPrefix('lit[1]/+'), 'lit[1]/', 'glob characters are literal')
  t.equal(literalPrefix('#'), '', 'a leading wildcard needs the whole set')
  t.equal(literalPrefix('+/x'), '')
  t.equal(literalPrefix('a/bc+/#'), 'a/bc+/', 'only whole-level wildcards count')
})
