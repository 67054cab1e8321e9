// Public surface of the engine runtime: what the broker node and the CLI use.
export type { EngineApi, RolloutReport, HistoryPoint } from './api.ts'
export { ThingEngine, DEFAULT_ENGINE_OPTIONS, type EngineOptions, type EngineHost } from './engine.ts'
export { MemoryStore } from './memory-store.ts'
export { RedisStore, ENGINE_LUA_DIR } from './redis-store.ts'
export type { EngineStore } from './store.ts'
export type { OutMessage } from './batch.ts'
export { topics, parseInbound, INBOUND_FILTERS, type InboundWrite } from './topics.ts'
export { RuntimeError, RUNTIME_ERRORS, type RuntimeErrorCode } from './errors.ts'
