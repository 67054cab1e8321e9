import t from 'tap'
import { createHooks, type AedesClient, type HooksContext } from '../../broker/mqtt/hooks.ts'
import { setPrincipal } from '../../broker/auth/index.ts'

/** The hooks with a log and metrics that record what they are given. */
function setup (): { hooks: ReturnType<typeof createHooks>, lines: Array<Record<string, unknown>>, counted: () => number } {
  const lines: Array<Record<string, unknown>> = []
  let counted = 0
  const ctx = {
    log: { info: (o: Record<string, unknown>) => { lines.push(o) }, warn: () => {}, debug: () => {} },
    metrics: { rejected: { inc: () => { counted++ } } },
    auth: {},
    connInfo: () => undefined,
    limits: { maxSubscriptionsPerClient: 0, publishRatePerClient: 0, keepaliveLimit: 0 },
    sessions: null,
    localClient: () => undefined,
  } as unknown as HooksContext
  return { hooks: createHooks(ctx), lines, counted: () => counted }
}

function client (id: string): AedesClient {
  const c = { id, clean: true, closed: false, subscriptions: {}, close: () => {} } as unknown as AedesClient
  setPrincipal(c, { username: null, role: 'anonymous', clientId: id })
  return c
}

const refuseFilter = (hooks: ReturnType<typeof createHooks>, c: AedesClient, n: number): void => {
  for (let i = 0; i < n; i++) hooks.authorizeSubscribe(c, { topic: `bad#${i}`, qos: 0 }, (err, sub) => { if (err || sub !== null) throw new Error('filter was not refused') })
}

t.test('a client\'s refusals are all counted, and logged 10 per 10 s', async (t) => {
  const { hooks, lines, counted } = setup()
  const a = client('a')
  refuseFilter(hooks, a, 1000)
  t.equal(counted(), 1000, 'every refusal counted')
  t.equal(lines.length, 10, 'ten logged')
  t.equal(lines[0].event, 'client.refused')
  t.equal(lines[0].reason, 'invalid_filter')
  t.ok(typeof lines[9].moreNotLoggedForMs === 'number', 'the tenth says that more are not logged')
  refuseFilter(hooks, client('b'), 3)
  t.equal(lines.length, 13, 'another client has its own budget')
})

t.test('the next window logs again and says how many were left out', async (t) => {
  const { hooks, lines } = setup()
  const a = client('a')
  const realNow = Date.now
  let now = realNow()
  Date.now = () => now
  try {
    refuseFilter(hooks, a, 25)
    now += 10_000
    refuseFilter(hooks, a, 1)
  } finally { Date.now = realNow }
  t.equal(lines.length, 11)
  t.equal(lines[10].notLoggedBefore, 15)
})
