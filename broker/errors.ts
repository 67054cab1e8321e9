/**
 * The error catalogue. Every error the broker raises on purpose has a stable
 * code; operators grep logs for it and admin replies carry it. Add new codes
 * here, never inline.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'CONFIG_INVALID: the configuration has problems; each one is listed',
  CONFIG_FILE_UNREADABLE: 'CONFIG_FILE_UNREADABLE: the --config file could not be read or parsed as JSON',
  BROKER_REDIS_UNAVAILABLE: 'BROKER_REDIS_UNAVAILABLE: Redis cannot be reached; the node refuses work it cannot make durable',
  BROKER_PACKET_TOO_LARGE: 'BROKER_PACKET_TOO_LARGE: a packet declared a length over the configured maximum',
  BROKER_MALFORMED_PACKET: 'BROKER_MALFORMED_PACKET: bytes that are not a valid MQTT packet',
  BROKER_TOPIC_RESERVED: 'BROKER_TOPIC_RESERVED: $SYS and $admin topics are reserved for the system and admins',
  BROKER_INVALID_FILTER: 'BROKER_INVALID_FILTER: the topic filter is not valid MQTT',
  BROKER_SESSION_TAKEN_OVER: 'BROKER_SESSION_TAKEN_OVER: the same client id connected elsewhere',
  BROKER_NOT_AUTHORIZED: 'BROKER_NOT_AUTHORIZED: the client may not do this',
  BROKER_QUEUE_FULL: 'BROKER_QUEUE_FULL: the client offline queue is full; the oldest message was dropped',
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
