import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)

/**
 * The prototype of aedes' Client, for the patches that change how clients
 * write (slow-consumers.ts, delivery.ts). aedes exports only its entry point,
 * so the class is reached by the file's URL.
 */
export const aedesClientPrototype: object = (await import(pathToFileURL(join(dirname(require.resolve('aedes')), 'lib', 'client.js')).href) as { default: { prototype: object } }).default.prototype
