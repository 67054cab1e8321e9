/**
 * What thingmesh keeps per aedes Client, beside aedes' own fields. Held in a
 * WeakMap so it dies with the client and aedes' object shape is untouched.
 */
export class ClientState {
  /** Cluster-wide connection epoch (0 on a standalone node). */
  epoch = 0
  /** CONNACK session-present flag as thingmesh knows it [MQTT-3.2.2-2]. */
  sessionPresent = false
  /** Recently forwarded packet keys; only used when the client has several filters. */
  recent: Set<string> | null = null
  recentOrder: string[] | null = null
  /** Closed because the same client id connected elsewhere: no will, per MQTT 5 semantics. */
  takenOver = false
  /** A CONNACK has been written; until then deliveries wait in `beforeConnack` [MQTT-3.2.0-1]. */
  connackWritten = false
  beforeConnack: Array<{ packet: object, opts?: object }> | null = null
  private withheld: Array<{ messageId: number, routed: boolean }> | null = null

  /**
   * QoS1 PUBACKs withheld until the publish is routed, in arrival order
   * [MQTT-4.6.0-2]. Made on first use: most idle clients never publish
   * QoS1 (issue 8, memory per idle connection).
   */
  get pubacks (): Array<{ messageId: number, routed: boolean }> { return this.withheld ??= [] }
}

const states = new WeakMap<object, ClientState>()

export function stateOf (client: object): ClientState {
  let s = states.get(client)
  if (!s) {
    s = new ClientState()
    states.set(client, s)
  }
  return s
}

const RECENT_LIMIT = 512

/** True the first time a packet key is seen for this client (overlapping filters deliver twice). */
export function firstDelivery (state: ClientState, key: string): boolean {
  if (state.recent === null) { state.recent = new Set(); state.recentOrder = [] }
  if (state.recent.has(key)) return false
  state.recent.add(key)
  state.recentOrder!.push(key)
  if (state.recentOrder!.length > RECENT_LIMIT) state.recent.delete(state.recentOrder!.shift()!)
  return true
}
