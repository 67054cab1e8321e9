import t from 'tap'
import { parseRss } from '../broker-memory.ts'

t.test('resident memory from Prometheus text, with or without a prefix', async (t) => {
  t.equal(parseRss('# HELP x\nprocess_resident_memory_bytes 1234\n'), 1234)
  t.equal(parseRss('thingmesh_process_process_resident_memory_bytes 1.29e8\n'), 129_000_000)
  t.equal(parseRss('process_resident_memory_bytes{node="a"} 42\n'), 42)
  t.equal(parseRss('# HELP process_resident_memory_bytes only a comment\nother 1\n'), null)
})
