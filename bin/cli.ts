import { Command, CommanderError, Option } from 'commander'
import { envOf, flagOf, loadConfig, optionSpecs } from '../broker/config.ts'
import { isThingmeshError } from '../broker/errors.ts'
import { createLogger } from '../broker/log.ts'
import { runStart } from './commands/start.ts'
import { registerAdmin } from './commands/admin.ts'
import { registerUsers } from './commands/users.ts'

/**
 * The `thingmesh` command line. Each subcommand parses its options here and
 * hands a validated config to the module that does the work.
 */
const program = new Command('thingmesh')
  .description('Active-active MQTT broker cluster with an embedded thing engine')
  .exitOverride()
  .configureOutput({ outputError: (str, write) => write(str) })

const start = program.command('start')
  .description('run one broker node (standalone without --redis, a cluster node with it)')
  .option('--config <file>', 'JSON config file; keys are the option names in camelCase (env THINGMESH_CONFIG)')
for (const [key, spec] of Object.entries(optionSpecs)) {
  const isBool = key === 'allowAnonymous'
  const flag = isBool ? `${flagOf(key)} <true|false>` : `${flagOf(key)} <value>`
  const def = spec.default === undefined ? '' : ` (default ${String(spec.default)})`
  start.addOption(new Option(flag, `${spec.doc}${def}; env ${envOf(key)}`))
}
start.action(async (opts: Record<string, unknown>) => {
  const { config: file, ...cli } = opts
  const config = loadConfig({ cli, env: process.env, file: file as string | undefined })
  const log = createLogger(config.logLevel)
  await runStart(config, log)
})

program.command('drain')
  .description('hand a node\'s partitions over, move its clients to the other nodes over --spread-ms, and make it exit')
  .requiredOption('--node-id <id>', 'the node to drain')
  .requiredOption('--redis <url>', 'the cluster\'s Redis URL (env THINGMESH_REDIS)', process.env.THINGMESH_REDIS)
  .option('--cluster <name>', 'cluster name (Redis key prefix)', process.env.THINGMESH_CLUSTER ?? 'thingmesh')
  .option('--spread-ms <ms>', 'disconnect clients evenly over this long (default: the node\'s --drain-spread-ms)')
  .option('--timeout-ms <ms>', 'give up waiting after this long', '60000')
  .action(async (opts: { nodeId: string, redis: string, cluster: string, spreadMs?: string, timeoutMs: string }) => {
    const { runDrain } = await import('./commands/drain.ts')
    const code = await runDrain({
      nodeId: opts.nodeId, redis: opts.redis, cluster: opts.cluster, timeoutMs: Number(opts.timeoutMs) || 60000,
      ...(opts.spreadMs === undefined ? {} : { spreadMs: Number(opts.spreadMs) }),
    }, (line) => process.stdout.write(line + '\n'))
    process.exit(code)
  })

program.command('loadtest')
  .description('MQTT load test against any broker (same as thingmesh-loadtest); see loadtest/README.md')
  .allowUnknownOption()
  .helpOption(false)
  .argument('[args...]')
  .action(async (args: string[]) => {
    const { runLoadtestCli } = await import('../loadtest/index.ts')
    process.exit(await runLoadtestCli(args))
  })

program.command('import')
  .description('validate a thing engine module (JSON bundle); with --redis, apply it to the cluster as one version, all-or-nothing')
  .argument('<module>', 'module bundle JSON file')
  .option('--redis <url>', 'cluster Redis URL; without it the bundle is only validated')
  .option('--cluster <name>', 'cluster name (Redis key prefix)', 'thingmesh')
  .option('--dry-run', 'validate against the cluster\'s current definitions, print every problem with its JSON path, apply nothing')
  .option('--timeout <ms>', 'how long to wait for every live node to confirm the new version', '2000')
  .action(async (file: string, opts: { redis?: string, cluster: string, dryRun?: boolean, timeout: string }) => {
    const { runImport } = await import('./commands/import.ts')
    const code = await runImport(file, {
      cluster: opts.cluster, dryRun: opts.dryRun === true, partitions: 64,
      rolloutTimeoutMs: Number(opts.timeout) || 2000, deadAfterMs: 3000,
      ...(opts.redis === undefined ? {} : { redis: opts.redis }),
    }, (line) => process.stdout.write(line + '\n'))
    process.exit(code)
  })

registerAdmin(program)
registerUsers(program)

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2)
  }
  if (isThingmeshError(err)) {
    process.stderr.write(`thingmesh: ${err.message} [${err.code}]\n`)
    process.exit(2)
  }
  const e = err as NodeJS.ErrnoException
  if (e.code === 'EADDRINUSE' || e.code === 'EACCES') {
    process.stderr.write(`thingmesh: cannot listen: ${e.message}; choose another --port/--http-port\n`)
    process.exit(2)
  }
  process.stderr.write(`thingmesh: ${e.message}\n`)
  process.exit(1)
}
