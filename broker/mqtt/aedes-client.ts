import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)
const lib = join(dirname(require.resolve('aedes')), 'lib')

/**
 * The prototype of aedes' Client, for the patches that change how clients
 * write (slow-consumers.ts, delivery.ts). aedes exports only its entry point,
 * so the class is reached by the file's URL.
 */
export const aedesClientPrototype: object = (await import(pathToFileURL(join(lib, 'client.js')).href) as { default: { prototype: object } }).default.prototype

/** aedes' QoSPacket (lib/qos-packet.js): a delivery's packet, with the client's next packet id unless it has one. */
export const AedesQoSPacket = (await import(pathToFileURL(join(lib, 'qos-packet.js')).href) as { default: new (original: object, client: object) => { messageId: number, qos: number, topic: string, retain: boolean } }).default
