import t from 'tap'
import type { OutMessage } from '../../engine/runtime/batch.ts'
import { decodeEntry, encodeEntry, type EntryFields } from '../../engine/runtime/entries.ts'
import { decodeOutbox, encodeOutbox, entryFields, entryWidth, PACKED_ENTRY_FIELD, unpackEntry } from '../../engine/runtime/formats.ts'

// Stored formats (engine/runtime/formats.ts): format 2 records must carry
// every character a thing id, client id or payload may hold, and a reader
// must take both formats, since a log or outbox written before the switch
// is read after it.

const odd: EntryFields = { t: 'a|b', k: 'w', p: 'x|', v: '{"v":"|3|é\u{1F600}\n\\"}', n: 1_700_000_000_123, o: 'client|7\u0000', d: 0 }

t.test('a packed entry decodes to the same fields, separators and any character included', async (t) => {
  for (const e of [
    odd,
    { t: 's1', k: 'w', p: 'p0', v: '12', n: 1, o: 'dev-1', d: 0 },
    { t: 's1', k: 'tick', p: '', v: '', n: 5, o: '', d: 0 },
    { t: 's1', k: 'r', p: 'p1', v: '[1,2]', n: 5, o: '', d: 3 },
    { t: 's1', k: 'd', p: '', v: '', n: 5, o: '', d: 0 },
  ] satisfies EntryFields[]) {
    const fields = entryFields(e, 2)
    t.equal(fields.length, 2, 'one stream field')
    t.equal(fields[0], PACKED_ENTRY_FIELD)
    t.same(decodeEntry('1-0', fields), { id: '1-0', ...e })
  }
})

t.test('format 1 and format 2 entries are both read', async (t) => {
  t.same(decodeEntry('1-0', encodeEntry(odd)), { id: '1-0', ...odd }, 'format 1 (seven fields)')
  t.same(entryFields(odd, 1), encodeEntry(odd), 'format 1 is what earlier releases write')
  t.same(decodeEntry('1-0', entryFields(odd, 2)), { id: '1-0', ...odd }, 'format 2')
  for (const f of [1, 2] as const) t.equal(entryWidth(f), String(entryFields(odd, f).length), `the width the scripts read format ${f} by`)
})

t.test('a damaged or foreign packed entry is refused, not misread', async (t) => {
  t.equal(unpackEntry('1-0', 'w|1|0|5|0|0|ab'), undefined, 'lengths past the end')
  t.equal(unpackEntry('1-0', 'w|1|0|2'), undefined, 'header cut short')
  t.equal(unpackEntry('1-0', 'zz|1|0|1|0|0|a'), undefined, 'unknown kind')
  t.equal(unpackEntry('1-0', 'w|x|0|1|0|0|a'), undefined, 'time not a number')
  t.equal(decodeEntry('1-0', ['e3', 'w|1|0|1|0|0|a']), undefined, 'a later format is skipped by the caller, not guessed at')
})

const batch: OutMessage[] = [
  { topic: 'things/s1/changed/p0', payload: '{"id":"0:1-0/0.p0","value":"a|b\\"c\\n"}', qos: 1, retain: false },
  { topic: 'alarms/s1', payload: 'plain text | 12|3|', qos: 0, retain: false },
  { topic: 'things/s1/alerts/high', payload: '', qos: 2, retain: true },
  { topic: 'things/s1/state', payload: '', qos: 1, retain: true, stateRef: { id: '0:1-0/state', thingId: 's1' } },
  { topic: 't/é\u{1F600}', payload: '\u{1F600}é', qos: 1, retain: false },
]

t.test('an outbox batch round-trips in both formats', async (t) => {
  t.same(decodeOutbox(encodeOutbox(batch, 1)), batch, 'format 1')
  t.equal(encodeOutbox(batch, 1), JSON.stringify(batch), 'format 1 is the JSON array earlier releases write')
  const two = encodeOutbox(batch, 2)
  t.same(decodeOutbox(two), batch, 'format 2')
  t.ok(two.length < JSON.stringify(batch).length, 'format 2 is shorter')
  t.same(decodeOutbox(encodeOutbox([], 2)), [], 'empty batch')
})

t.test('a damaged outbox batch throws (the caller skips it) rather than yielding wrong messages', async (t) => {
  const two = encodeOutbox(batch, 2)
  t.throws(() => decodeOutbox(two.slice(0, -3)), 'cut short')
  t.throws(() => decodeOutbox('3m10'), 'unknown format')
  t.throws(() => decodeOutbox('2x10' + two.slice(4)), 'unknown record kind')
  t.throws(() => decodeOutbox('2m1012|x|things'), 'length not a number')
})
