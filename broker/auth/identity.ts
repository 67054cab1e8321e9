import type { Principal } from './acl.ts'

/**
 * The principal of each connection, kept beside aedes' Client (WeakMap: it
 * dies with the client). Set once in authenticate, read by every authorize
 * hook. A client without one never passed authentication and may do nothing.
 */
const principals = new WeakMap<object, Principal>()

export function setPrincipal (client: object, p: Principal): void { principals.set(client, p) }
export function principalOf (client: object): Principal | undefined { return principals.get(client) }
