// Plain-JS entry for worker threads: register tsx, then load the TypeScript worker.
import { register } from 'tsx/esm/api'
register()
await import(new URL('./worker.ts', import.meta.url).href)
