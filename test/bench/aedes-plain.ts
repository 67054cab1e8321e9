/**
 * A plain Aedes broker, the baseline the benchmarks compare thingmesh with:
 * `node --import tsx test/bench/aedes-plain.ts <port> [redisUrl]`.
 * Without a Redis URL it is one in-memory Aedes node; with one it is the
 * usual "Aedes cluster" recipe (mqemitter-redis + aedes-persistence-redis).
 * Prints `listening <port>` on stdout once it accepts connections.
 */
import { createServer } from 'node:net'
import { createRequire } from 'node:module'
import { Aedes } from 'aedes'

const require = createRequire(import.meta.url)
const port = Number(process.argv[2])
const redisUrl = process.argv[3]

let opts: Record<string, unknown> = {}
if (redisUrl) {
  const u = new URL(redisUrl)
  const conn = { host: u.hostname, port: Number(u.port) }
  const mqemitterRedis = require('mqemitter-redis') as (o: object) => unknown
  const persistenceRedis = require('aedes-persistence-redis') as (o: object) => unknown
  opts = { mq: mqemitterRedis(conn), persistence: persistenceRedis(conn) }
}
const broker = await Aedes.createBroker(opts as never)
const server = createServer(broker.handle as never)
server.listen(port, '127.0.0.1', () => { process.stdout.write(`listening ${port}\n`) })
