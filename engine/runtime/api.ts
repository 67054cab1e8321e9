/**
 * The engine's operations as the admin layer (admin MQTT topics, CLI) sees
 * them. Implemented by the engine runtime for both the standalone node (in
 * memory) and the cluster (Redis). Every mutation is cluster-wide and
 * versioned: it resolves once the change is stored, with the nodes that
 * confirmed applying that version within the timeout.
 *
 * Errors are thrown as EngineError (engine/errors.ts) with a stable code.
 */
export interface RolloutReport {
  /** The definitions version this change produced. */
  version: number
  /** Node ids (brokerIds) that confirmed they run this version. */
  appliedBy: string[]
  /** Live nodes that did not confirm within the timeout. */
  missing: string[]
}

export interface HistoryPoint { ts: number, value: unknown, quality?: string }

export interface EngineApi {
  status(): Promise<{ version: number, partitions: number, owners: Record<string, string>, nodes: Array<{ brokerId: string, version: number }> }>

  putTemplate(def: unknown): Promise<RolloutReport>
  getTemplate(id: string): Promise<unknown | undefined>
  listTemplates(): Promise<unknown[]>
  deleteTemplate(id: string): Promise<RolloutReport>

  putThing(def: unknown): Promise<RolloutReport>
  getThing(id: string): Promise<{ definition: unknown, state: unknown } | undefined>
  listThings(opts?: { template?: string, limit?: number, after?: string }): Promise<unknown[]>
  deleteThing(id: string): Promise<RolloutReport>

  putRule(def: unknown): Promise<RolloutReport>
  getRule(id: string): Promise<unknown | undefined>
  listRules(): Promise<unknown[]>
  deleteRule(id: string): Promise<RolloutReport>

  /** Validates first, then applies all-or-nothing as one version. */
  importModule(bundle: unknown, opts?: { dryRun?: boolean }): Promise<RolloutReport & { problems?: Array<{ code: string, path: string, message: string }> }>
  exportModule(): Promise<unknown>

  historyQuery(thingId: string, property: string, from?: number, to?: number, limit?: number): Promise<HistoryPoint[]>
  listAlerts(opts?: { thingId?: string, state?: 'active' | 'acknowledged' | 'cleared' }): Promise<unknown[]>
  ackAlert(thingId: string, alert: string, by: string): Promise<void>
}
