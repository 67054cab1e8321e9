import type { Logger } from '../log.ts'
import { ADMIN_REPLY_PREFIX, ADMIN_REQUEST_PREFIX, principalOf, replyTopicOf } from '../auth/index.ts'
import { releasePuback } from '../mqtt/wire-patches.ts'
import type { AdminService } from './service.ts'

type Done = (err?: Error | null) => void
interface PublishPacket { topic: string, payload: Buffer, qos: number, retain?: boolean, messageId?: number }
interface Client { id: string, conn: import('node:stream').Writable }
interface Broker { publish(packet: object, client: unknown, done?: Done): void }

/**
 * Admin requests never reach the message path: a client PUBLISH to
 * `$admin/{operation}` (authorizePublish already let only admins through) is
 * taken out of aedes' publish before the retained store and the bus, answered
 * by this node, and acknowledged. Nothing is routed to subscribers or stored.
 * Internal publishes (client null) pass untouched: that is how replies go out.
 */
export function interceptAdminRequests (broker: Broker, admin: AdminService, log: Logger): void {
  const publish = broker.publish.bind(broker)
  broker.publish = function adminAwarePublish (packet: object, client: unknown, done?: Done): void {
    if (typeof client === 'function') { publish(packet, client as Done); return }
    const p = packet as PublishPacket
    if (client === null || client === undefined || !p.topic.startsWith(ADMIN_REQUEST_PREFIX) || p.topic.startsWith(ADMIN_REPLY_PREFIX)) {
      publish(packet, client, done)
      return
    }
    const c = client as Client
    const principal = principalOf(c)
    // Unreachable through authorizePublish; kept so a hook change cannot open it.
    if (principal?.role !== 'admin' || principal.username === null) { done?.(new Error('admin requests need the admin role')); return }
    // QoS1: our wire patch withholds PUBACK until the publish chain ends; this is its end.
    if (p.qos === 1 && p.messageId !== undefined) releasePuback(c, p.messageId)
    done?.(null)
    const operation = p.topic.slice(ADMIN_REQUEST_PREFIX.length)
    admin.handle({ username: principal.username, clientId: c.id }, operation, p.payload).then((reply) => {
      const payload = Buffer.from(JSON.stringify(reply))
      publish({ cmd: 'publish', topic: replyTopicOf(c.id), payload, qos: p.qos > 0 ? 1 : 0, retain: false, dup: false }, null, (err?: Error | null) => {
        if (err) log.warn({ event: 'admin.reply_failed', clientId: c.id, operation, err: err.message }, 'could not publish an admin reply')
      })
    }, (err: Error) => {
      log.error({ event: 'admin.handler_crashed', operation, err: err.message }, 'admin handler threw')
    })
  }
}
