/**
 * The error catalogue. Every error the broker raises on purpose has a stable
 * code; operators grep logs for it and admin replies carry it. Add new codes
 * here, never inline.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID: the configuration has problems; each one is listed',
  CONFIG_FILE_UNREADABLE: 'CONFIG_FILE_UNREADABLE: the --config file could not be read or parsed as JSON',
  BROKER_REDIS_UNAVAILABLE: 'BROKER_REDIS_UNAVAILABLE: Redis cannot be reached; the node refuses work it cannot make durable',
  BROKER_FENCED: 'BROKER_FENCED: the cluster declared this node incarnation dead; it writes nothing more and rejoins as a new incarnation (CONNACK 0x03 meanwhile)',
  BROKER_PACKET_TOO_LARGE: 'BROKER_PACKET_TOO_LARGE: a packet declared a length over the configured maximum',
  BROKER_MALFORMED_PACKET: 'BROKER_MALFORMED_PACKET: bytes that are not a valid MQTT packet',
  BROKER_TOPIC_RESERVED: 'BROKER_TOPIC_RESERVED: $SYS and $admin topics are reserved for the system and admins',
  BROKER_INVALID_FILTER: 'BROKER_INVALID_FILTER: the topic filter is not valid MQTT',
  BROKER_SESSION_TAKEN_OVER: 'BROKER_SESSION_TAKEN_OVER: the same client id connected elsewhere',
  BROKER_NOT_AUTHORIZED: 'BROKER_NOT_AUTHORIZED: the client may not do this',
  BROKER_QUEUE_FULL: 'BROKER_QUEUE_FULL: the client offline queue is full; the oldest message was dropped',
  BROKER_LIMIT_CONNECTIONS: 'BROKER_LIMIT_CONNECTIONS: the node or this address has the most connections allowed; the socket was closed',
  BROKER_LIMIT_CONNECT_RATE: 'BROKER_LIMIT_CONNECT_RATE: this address opened connections faster than allowed; the socket was closed',
  BROKER_LIMIT_PUBLISH_RATE: 'BROKER_LIMIT_PUBLISH_RATE: the client published faster than allowed and was disconnected',
  BROKER_LIMIT_SUBSCRIPTIONS: 'BROKER_LIMIT_SUBSCRIPTIONS: the client has the most subscriptions allowed; the filter was refused (SUBACK 0x80)',
  BROKER_WS_ORIGIN: 'BROKER_WS_ORIGIN: a WebSocket upgrade came from an Origin not on the allow-list (HTTP 403)',
  BROKER_UNHANDLED_REJECTION: 'BROKER_UNHANDLED_REJECTION: a background operation failed and nothing handled it (a bug); it was logged and counted, the node went on',
  BROKER_LINK_REJECTED: 'BROKER_LINK_REJECTED: a connection to the cluster link port failed the handshake (no proof of the cluster secret), broke the link protocol or sent an oversized frame; it was closed, nothing else affected',
  BROKER_TLS_CONFIG: 'BROKER_TLS_CONFIG: the TLS certificate, key or CA file could not be read',
  AUTH_REQUIRED: 'AUTH_REQUIRED: this node requires a username and password (CONNACK 0x05)',
  AUTH_BAD_CREDENTIALS: 'AUTH_BAD_CREDENTIALS: unknown user or wrong password (CONNACK 0x04)',
  AUTH_THROTTLED: 'AUTH_THROTTLED: too many failed logins from this address; attempts are refused for a while (CONNACK 0x05)',
  AUTH_BUSY: 'AUTH_BUSY: too many password checks are queued on this node; try again (CONNACK 0x03)',
  AUTH_CLIENT_ID_FORBIDDEN: 'AUTH_CLIENT_ID_FORBIDDEN: this user may not use this client id (CONNACK 0x02)',
  AUTH_CERT_MISMATCH: 'AUTH_CERT_MISMATCH: the username differs from the client certificate identity (CONNACK 0x04)',
  AUTH_ACL_DENIED: 'AUTH_ACL_DENIED: the ACL does not allow this user this topic (publish: disconnect; subscribe: SUBACK 0x80)',
  AUTH_INVALID_USER: 'AUTH_INVALID_USER: the user name, role or password does not meet the rules',
  ADMIN_MALFORMED_REQUEST: 'ADMIN_MALFORMED_REQUEST: the request payload is not a JSON object with a string or number "id"',
  ADMIN_UNKNOWN_OPERATION: 'ADMIN_UNKNOWN_OPERATION: no admin operation has this name',
  ADMIN_INVALID_ARGUMENTS: 'ADMIN_INVALID_ARGUMENTS: the arguments do not match the operation schema; each problem is listed',
  ADMIN_NOT_FOUND: 'ADMIN_NOT_FOUND: the named client, session, retained message, user or alert does not exist',
  ADMIN_SESSION_CONNECTED: 'ADMIN_SESSION_CONNECTED: the session is in use by a connected client; kick it first',
  ADMIN_LAST_ADMIN: 'ADMIN_LAST_ADMIN: the change would leave the cluster without an admin user',
  ADMIN_ENGINE_UNAVAILABLE: 'ADMIN_ENGINE_UNAVAILABLE: this node runs no thing engine',
  ADMIN_UNAVAILABLE: 'ADMIN_UNAVAILABLE: the operation needs Redis, which cannot be reached; nothing was changed',
  ADMIN_INTERNAL: 'ADMIN_INTERNAL: the operation failed unexpectedly; the node log has the details',
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class ThingmeshError extends Error {
  readonly code: ErrorCode
  readonly details?: Record<string, unknown>
  constructor (code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ErrorCodes[code].slice(code.length + 2))
    this.name = 'ThingmeshError'
    this.code = code
    this.details = details
  }
}

export function isThingmeshError (err: unknown): err is ThingmeshError {
  return err instanceof ThingmeshError
}
