// Entry point of bin/thingmesh-loadtest.
import { runLoadtestCli } from './main.ts'

process.exitCode = await runLoadtestCli(process.argv.slice(2))
