export {
  PROPERTY_TYPES, QUALITIES, SEVERITIES,
  propertyDefSchema, templateDefSchema, thingDefSchema, ruleDefSchema, actionDefSchema, moduleBundleSchema, changePolicySchema,
  formatPath,
  type PropertyType, type Quality, type Severity, type ChangePolicy,
  type PropertyDef, type TemplateDef, type ThingDef, type RuleDef, type ActionDef, type ModuleBundle,
} from './schema.ts'
export { checkValue, checkPropertyDef, DEFAULT_VALUE_LIMITS, type ValueCheck, type ValueLimits } from './property-def.ts'
export { resolveTemplates, resolveThingProperties, type ResolvedTemplate, type EntityProblem, type TemplateResolution } from './resolve.ts'
