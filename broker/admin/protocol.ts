/**
 * The admin wire format (version 1). A request is published to
 * `$admin/{operation}`; the node that receives it answers on
 * `$admin/reply/{clientId}`:
 *
 *   request  {"v":1, "id": "r1", "args": {...}}      (v and args optional)
 *   success  {"v":1, "id": "r1", "ok": true,  "result": ...}
 *   failure  {"v":1, "id": "r1", "ok": false, "error": {"code": "...", "message": "...", "details"?: ...}}
 *
 * Arguments sit under "args" so an operation argument named "id" (things/get)
 * never collides with the request id. A request of another version is refused
 * (ADMIN_MALFORMED_REQUEST) rather than half understood.
 */
export const ADMIN_PROTOCOL_VERSION = 1
/** Largest request payload parsed; bigger ones (module imports aside) are refused. */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024

export type RequestId = string | number | null

export interface AdminError { code: string, message: string, details?: unknown }

export type AdminReply =
  | { v: 1, id: RequestId, ok: true, result: unknown }
  | { v: 1, id: RequestId, ok: false, error: AdminError }

export type ParsedRequest =
  | { ok: true, id: string | number, args: unknown }
  | { ok: false, id: RequestId, error: AdminError }

export function parseRequest (payload: Buffer): ParsedRequest {
  const bad = (message: string, id: RequestId = null): ParsedRequest => ({ ok: false, id, error: { code: 'ADMIN_MALFORMED_REQUEST', message } })
  if (payload.length > MAX_REQUEST_BYTES) return bad(`request over ${MAX_REQUEST_BYTES} bytes`)
  let body: unknown
  try { body = JSON.parse(payload.toString('utf8')) } catch (err) { return bad(`payload is not JSON: ${(err as Error).message}`) }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('payload must be a JSON object')
  const b = body as Record<string, unknown>
  const id = typeof b.id === 'string' || typeof b.id === 'number' ? b.id : null
  if (id === null || (typeof id === 'string' && id.length > 256)) return bad('"id" must be a string (up to 256 characters) or a number')
  if (b.v !== undefined && b.v !== ADMIN_PROTOCOL_VERSION) return bad(`unsupported request version ${JSON.stringify(b.v)}; this node speaks ${ADMIN_PROTOCOL_VERSION}`, id)
  return { ok: true, id, args: b.args ?? {} }
}

export function success (id: RequestId, result: unknown): AdminReply {
  return { v: 1, id, ok: true, result: result ?? null }
}

export function failure (id: RequestId, error: AdminError): AdminReply {
  return { v: 1, id, ok: false, error }
}
