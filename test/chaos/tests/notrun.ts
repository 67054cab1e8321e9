// Plan rows this harness does not exercise yet. Each says why, so the report
// never shows a pass that was not measured: either the feature is absent
// from the node under test, or the harness for it was not written yet.
import { notRun, type ChaosTest } from '../report.ts'
import { hasOption } from '../cluster.ts'

const pending = (id: string, title: string, criterion: string, feature: string | null, flag: string | null): ChaosTest => ({
  id,
  title,
  async run () {
    const present = flag === null || hasOption(flag)
    const why = !present ? `feature absent: node has no ${flag} option (${feature})` : 'not run: harness for this row not written yet (feature present)'
    return [notRun(id, criterion, why)]
  },
})

export const r9 = pending('R9', 'Reconnect storm with auth', '2,000 scrypt clients reconnected ≤ 30 s after a node kill; lag p99 < 200 ms; cache hit > 90%', 'users and scrypt credentials', '--admin-password')
export const r11 = pending('R11', 'Engine update propagation', 'all nodes on the same definition version ≤ 2 s after each update', 'engine admin topics', '--partitions')
export const s3 = pending('S3', 'Auth bypass', '0 unauthorized sessions; throttling after 10 failures/min; constant-time compare', 'users and authentication', '--admin-password')
export const s6 = pending('S6', 'Resource exhaustion: subscriptions and payloads', 'subscriptions capped with 0x80; RSS < 50 MB; inflight/queue capped', 'per-client subscription cap', '--max-subscriptions-per-client')
export const s8 = pending('S8', 'WebSocket hardening', 'foreign Origin 403; frame > maxPayload → 1009; S1 over WS', 'WebSocket listener', '--ws-port')
export const s9 = pending('S9', 'TLS', 'TLS 1.0/1.1, NULL and anonymous ciphers refused; 1.2/1.3 accepted', 'TLS listener', '--tls-port')
export const s10 = pending('S10', 'Fuzzing', '60 s in-process mutation fuzz: 0 throws, 0 crashes, 0 inputs > 100 ms', null, null)
export const r12 = pending('R12', 'Long soak (short)', 'RSS and used_memory drift < 10%; 0 leaked keys of gone clean sessions; 0 QoS1/2 lost; 0 unhandled errors', null, null)
