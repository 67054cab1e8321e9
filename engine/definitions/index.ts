export {
  Definitions, definitionChangeSchema,
  type DefinitionChange, type DefinitionsSnapshot, type ResolvedThing, type ApplyResult, type ApplyOptions,
} from './registry.ts'
export { validateModule, validateModuleText, importModule, SUPPORTED_MODULE_VERSIONS, type ModuleValidation } from './module.ts'
