import t from 'tap'
import { createHooks, type AedesClient, type HooksContext } from '../../broker/mqtt/hooks.ts'
import { setPrincipal } from '../../broker/auth/index.ts'

const hooks = createHooks({
  log: { info: () => {}, warn: () => {}, debug: () => {} },
  metrics: { rejected: { inc: () => {} } },
  auth: {},
  connInfo: () => undefined,
  limits: { maxSubscriptionsPerClient: 5, publishRatePerClient: 0, keepaliveLimit: 0 },
  sessions: null,
  localClient: () => undefined,
} as unknown as HooksContext)

const c = { id: 'c', clean: true, closed: false, subscriptions: Object.create(null) as Record<string, { qos: number }>, close: () => {} } as unknown as AedesClient
setPrincipal(c, { username: null, role: 'anonymous', clientId: 'c' })

/** One SUBSCRIBE: aedes authorizes its filters one after the other, synchronously. */
function subscribe (filters: string[]): boolean[] {
  return filters.map((topic) => {
    let granted = false
    hooks.authorizeSubscribe(c, { topic, qos: 1 }, (err, sub) => { granted = err === null && sub !== null })
    return granted
  })
}
/** What aedes does once the SUBSCRIBE is stored. */
const store = (filters: string[]): void => { for (const f of filters) c.subscriptions[f] = { qos: 1 } }
const nextMicrotask = (): Promise<void> => new Promise((resolve) => queueMicrotask(resolve))

t.test('the cap counts grants aedes has not stored yet, held filters, replacements and unsubscribes', async (t) => {
  t.same(subscribe(['a', 'b', 'c', 'd', 'e', 'f', 'g']), [true, true, true, true, true, false, false], 'five of seven in one SUBSCRIBE')
  t.same(subscribe(['a', 'h']), [true, false], 'before aedes stored them: a replacement passes, a new filter does not')
  store(['a', 'b', 'c', 'd', 'e'])
  await nextMicrotask()
  t.same(subscribe(['c', 'x']), [true, false], 'after: the same')
  delete c.subscriptions.b
  t.same(subscribe(['y']), [false], 'within the same microtask the count is the one taken at the first filter')
  await nextMicrotask()
  t.same(subscribe(['y', 'z']), [true, false], 'room for one after an UNSUBSCRIBE')
})

t.test('a SUBSCRIBE of a held filter only, then an UNSUBSCRIBE, leaves room (security-limits S6 sequence)', async (t) => {
  const d = { id: 'd', clean: true, closed: false, subscriptions: Object.create(null) as Record<string, { qos: number }>, close: () => {} } as unknown as AedesClient
  setPrincipal(d, { username: null, role: 'anonymous', clientId: 'd' })
  const sub = (filters: string[]): boolean[] => filters.map((topic) => {
    let granted = false
    hooks.authorizeSubscribe(d, { topic, qos: 1 }, (err, s) => { granted = err === null && s !== null })
    return granted
  })
  t.same(sub(['s/1', 's/2', 's/3', 's/4', 's/5', 's/6']), [true, true, true, true, true, false])
  for (const f of ['s/1', 's/2', 's/3', 's/4', 's/5']) d.subscriptions[f] = { qos: 1 }
  await nextMicrotask()
  t.same(sub(['s/1']), [true], 'replacing a held filter')
  await nextMicrotask()
  delete d.subscriptions['s/5']
  t.same(sub(['s/8']), [true], 'room again after UNSUBSCRIBE')
})

t.test('the held filters are listed once per SUBSCRIBE, not once per filter', async (t) => {
  const held: Record<string, { qos: number }> = Object.create(null)
  for (let i = 0; i < 5; i++) held[`held/${i}`] = { qos: 1 }
  let listed = 0
  const full = { id: 'full', clean: true, closed: false, close: () => {}, subscriptions: new Proxy(held, { ownKeys: (target) => { listed++; return Reflect.ownKeys(target) } }) } as unknown as AedesClient
  setPrincipal(full, { username: null, role: 'anonymous', clientId: 'full' })
  for (let packet = 0; packet < 3; packet++) {
    for (let i = 0; i < 100; i++) hooks.authorizeSubscribe(full, { topic: `many/${packet}/${i}`, qos: 1 }, (err, sub) => { if (err || sub !== null) throw new Error('granted past the cap') })
    await nextMicrotask()
  }
  t.equal(listed, 3, 'three SUBSCRIBEs of 100 refused filters: three listings')
})
