import { Command, Option } from 'commander'
import { AdminClient } from '../../broker/admin/index.ts'
import { argsFrom, render, UsageError } from './output.ts'

export const connectionOptions = (cmd: Command): Command => cmd
  .addOption(new Option('--url <url>', 'broker URL (mqtt://, mqtts://, ws://, wss://)').env('THINGMESH_ADMIN_URL').default('mqtt://127.0.0.1:1883'))
  .addOption(new Option('--username <name>', 'admin user').env('THINGMESH_ADMIN_USERNAME'))
  .addOption(new Option('--password <password>', 'admin password (prefer the environment variable)').env('THINGMESH_ADMIN_PASSWORD'))
  .addOption(new Option('--ca <file>', 'CA file to verify an mqtts:// or wss:// broker'))
  .option('--insecure', 'do not verify the broker certificate (testing only)')
  .option('--timeout <ms>', 'reply timeout', '10000')

export interface ConnectionOpts { url: string, username?: string, password?: string, ca?: string, insecure?: boolean, timeout: string }

export async function adminConnect (o: ConnectionOpts): Promise<AdminClient> {
  const { readFileSync } = await import('node:fs')
  return AdminClient.connect({
    url: o.url, username: o.username, password: o.password, timeoutMs: Number(o.timeout),
    mqtt: { ca: o.ca ? readFileSync(o.ca) : undefined, rejectUnauthorized: o.insecure !== true },
  })
}

/**
 * `thingmesh admin <operation> [json-args] [--key value ...]`: one admin
 * request over MQTT. Prints a table (or JSON with --json); exits 1 with the
 * error message and code when the node refuses, 2 on usage errors.
 */
export function registerAdmin (program: Command): void {
  const cmd = program.command('admin')
    .description('run an admin operation over the $admin MQTT topics (see docs/admin.md), e.g. `admin clients/list --limit 10`')
    .argument('<operation>', 'operation, e.g. cluster/status, clients/kick, things/get')
    .argument('[args]', 'arguments as a JSON object')
    .option('--json', 'print the raw reply JSON')
    .allowUnknownOption()
    .allowExcessArguments()
  connectionOptions(cmd)
  cmd.action(async (operation: string, positional: string | undefined, opts: ConnectionOpts & { json?: boolean }, command: Command) => {
    // Unknown --key value pairs are operation arguments.
    const rest = command.args.slice(positional === undefined ? 1 : 2)
    let args: Record<string, unknown>
    try {
      if (positional !== undefined && positional.startsWith('--')) { rest.unshift(positional); positional = undefined }
      args = argsFrom(positional, rest)
    } catch (err) {
      if (err instanceof UsageError) { process.stderr.write(`thingmesh admin: ${err.message}\n`); process.exit(2) }
      throw err
    }
    const client = await adminConnect(opts)
    try {
      const reply = await client.request(operation, args)
      if (opts.json) process.stdout.write(JSON.stringify(reply, null, 2) + '\n')
      else if (reply.ok) process.stdout.write(render(reply.result) + '\n')
      if (!reply.ok) {
        process.stderr.write(`thingmesh admin ${operation}: ${reply.error.message} [${reply.error.code}]\n`)
        process.exitCode = 1
      }
    } finally { await client.close() }
  })
}
