// Which clients a run has, where they connect, and which worker runs them.
// Pure and deterministic, so every worker derives the same ids and the
// coordinator can compute what each subscriber should have received.

import type { LoadtestConfig } from './config.ts'
import { usesSubscribers } from './options.ts'
import { expandTopic, topicMatches } from './topic.ts'

export type Role = 'conn' | 'pub' | 'sub' | 'device'

export interface ClientSpec {
  readonly role: Role
  /** Index within the role, the {n} placeholder. */
  readonly n: number
  readonly clientId: string
  readonly url: string
  /** pub: the concrete publish topic; device: unused. */
  readonly topic?: string
  /** sub: the subscription filter; device: its state topic. */
  readonly filter?: string
  /** device: the thing it plays. */
  readonly thingId?: string
}

export interface ShardPlan {
  readonly shard: number
  readonly clients: readonly ClientSpec[]
  /** Share of the total rate / count for this shard's publishers. */
  readonly rate: number | null
  readonly count: number | null
}

export function thingIdFor(config: Pick<LoadtestConfig, 'clientPrefix'>, n: number): string {
  return `${config.clientPrefix}-thing-${n}`
}

export function propertyName(i: number): string {
  return PROPERTY_NAMES[i] ?? `p${i}`
}
const PROPERTY_NAMES = ['temperature', 'humidity', 'battery', 'rssi', 'pressure']

export function buildClients(config: LoadtestConfig): ClientSpec[] {
  const out: ClientSpec[] = []
  const at = (urls: readonly string[], i: number): string => urls[i % urls.length]!
  const p = config.clientPrefix
  const main: Role =
    config.scenario === 'conn' ? 'conn' : config.scenario === 'sub' ? 'sub' : config.scenario === 'fleet' ? 'device' : 'pub'
  for (let n = 0; n < config.clients; n++) {
    const letter = main === 'conn' ? 'c' : main === 'sub' ? 's' : main === 'device' ? 'd' : 'p'
    const clientId = `${p}-${letter}${n}`
    if (main === 'pub') out.push({ role: main, n, clientId, url: at(config.urls, n), topic: expandTopic(config.topic, { clientId, n }) })
    else if (main === 'sub') out.push({ role: main, n, clientId, url: at(config.urls, n), filter: config.subTopic })
    else if (main === 'device') {
      const thingId = thingIdFor(config, n)
      out.push({ role: main, n, clientId, url: at(config.urls, n), thingId, filter: `things/${thingId}/state` })
    } else out.push({ role: main, n, clientId, url: at(config.urls, n) })
  }
  if (usesSubscribers(config.scenario)) {
    for (let n = 0; n < config.subscribers; n++) {
      out.push({ role: 'sub', n, clientId: `${p}-s${n}`, url: at(config.subUrls, n), filter: config.subTopic })
    }
  }
  return out
}

/** Round-robin over workers so each gets a mix of publishers and subscribers. */
export function assignShards(config: LoadtestConfig, clients: readonly ClientSpec[]): ShardPlan[] {
  const groups: ClientSpec[][] = Array.from({ length: config.workers }, () => [])
  clients.forEach((c, i) => groups[i % config.workers]!.push(c))
  const publishers = clients.filter((c) => c.role === 'pub' || c.role === 'device').length
  const receivers = clients.filter((c) => c.role === 'sub').length
  // The sub scenario's --count is messages received; every other one counts messages published.
  const countBase = config.scenario === 'sub' ? receivers : publishers
  let countLeft = config.count ?? 0
  return groups.map((g, shard) => {
    const mine = g.filter((c) => (config.scenario === 'sub' ? c.role === 'sub' : c.role === 'pub' || c.role === 'device')).length
    const share = countBase === 0 ? 0 : mine / countBase
    let count: number | null = null
    if (config.count !== null) {
      count = shard === groups.length - 1 ? countLeft : Math.round(config.count * share)
      countLeft -= count
    }
    return { shard, clients: g, rate: config.rate === null ? null : config.rate * (publishers === 0 ? 0 : mine / publishers), count }
  })
}

/** What each subscriber should have received: publisherId -> last seq, for publishers its filter matches. */
export function expectedFor(
  clients: readonly ClientSpec[],
  lastSeq: Readonly<Record<string, number>>,
): Record<string, Record<string, number>> {
  const pubs = clients.filter((c) => c.role === 'pub')
  const out: Record<string, Record<string, number>> = {}
  for (const s of clients) {
    if (s.role !== 'sub' || s.filter === undefined) continue
    const exp: Record<string, number> = {}
    for (const p of pubs) if (topicMatches(s.filter, p.topic!)) exp[p.clientId] = lastSeq[p.clientId] ?? 0
    out[s.clientId] = exp
  }
  return out
}
