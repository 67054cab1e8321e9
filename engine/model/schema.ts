// Shapes of templates, things and rules as they appear in module bundles and
// admin requests. Zod checks the shape only; cross-field and cross-entity
// checks (min <= max, default in range, inheritance, rule compilation) live in
// property-def.ts and ../definitions/consistency.ts so that every problem is
// reported with its JSON path in one pass.

import { z } from 'zod'
import { FORBIDDEN_KEYS, type JsonValue } from '../json.ts'
import { RESERVED_NAMES } from '../expr/index.ts'

// Ids end up in MQTT topics and Redis keys: no `/`, wildcards, `$` or spaces.
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/
// Property names are expression identifiers.
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/

export const idSchema = z.string().regex(ID_RE, 'must be 1-128 characters of A-Z a-z 0-9 _ . : - starting with a letter or digit')

export const propertyNameSchema = z.string()
  .regex(NAME_RE, 'must be an identifier (letter or _, then letters, digits, _), at most 64 characters')
  .refine((n) => !RESERVED_NAMES.has(n) && !FORBIDDEN_KEYS.has(n), { message: 'is a reserved name' })

export const PROPERTY_TYPES = ['number', 'integer', 'boolean', 'string', 'json', 'datetime', 'location'] as const
export type PropertyType = typeof PROPERTY_TYPES[number]

export const QUALITIES = ['good', 'uncertain', 'bad'] as const
export type Quality = typeof QUALITIES[number]

const jsonSchema: z.ZodType<JsonValue> = z.json()

/**
 * When a new value counts as a change (notified, appended to history,
 * re-evaluating rules). "on-change" compares with the last counted value;
 * `{ deadband: t }` needs |new - last counted| >= t (numbers only).
 */
export const changePolicySchema = z.union([
  z.enum(['always', 'on-change', 'never']),
  z.strictObject({ deadband: z.number().positive().finite() }),
])
export type ChangePolicy = z.infer<typeof changePolicySchema>

export const propertyDefSchema = z.strictObject({
  type: z.enum(PROPERTY_TYPES),
  description: z.string().max(1024).optional(),
  unit: z.string().max(32).optional(),
  min: z.number().finite().optional(),
  max: z.number().finite().optional(),
  enum: z.array(z.union([z.string(), z.number().finite()])).min(1).max(256).optional(),
  maxLength: z.number().int().positive().optional(),
  nullable: z.boolean().optional(),
  default: jsonSchema.optional(),
  persist: z.boolean().optional(),
  history: z.boolean().optional(),
  change: changePolicySchema.optional(),
})
export type PropertyDef = z.infer<typeof propertyDefSchema>

const propertiesSchema = z.record(propertyNameSchema, propertyDefSchema)

export const templateDefSchema = z.strictObject({
  id: idSchema,
  extends: idSchema.optional(),
  description: z.string().max(1024).optional(),
  properties: propertiesSchema.optional(),
})
export type TemplateDef = z.infer<typeof templateDefSchema>

export const thingDefSchema = z.strictObject({
  id: idSchema,
  template: idSchema,
  description: z.string().max(1024).optional(),
  /** Extra properties of this thing only; may not change a template property's type. */
  properties: propertiesSchema.optional(),
})
export type ThingDef = z.infer<typeof thingDefSchema>

export const SEVERITIES = ['info', 'warning', 'critical'] as const
export type Severity = typeof SEVERITIES[number]

const nameSchema = z.string().regex(ID_RE, 'must be 1-128 characters of A-Z a-z 0-9 _ . : -')

export const actionDefSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('setProperty'),
    /** Target thing; this thing when omitted. */
    thing: idSchema.optional(),
    property: propertyNameSchema,
    value: jsonSchema,
  }),
  z.strictObject({
    type: z.literal('publish'),
    topic: z.string().min(1).max(1024),
    payload: jsonSchema.optional(),
    qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
    retain: z.boolean().optional(),
  }),
  z.strictObject({
    type: z.literal('raiseAlert'),
    alert: nameSchema,
    severity: z.enum(SEVERITIES).optional(),
    message: z.string().max(4096).optional(),
  }),
  z.strictObject({
    type: z.literal('clearAlert'),
    alert: nameSchema,
  }),
  z.strictObject({
    type: z.literal('emitEvent'),
    event: nameSchema,
    payload: jsonSchema.optional(),
  }),
])
export type ActionDef = z.infer<typeof actionDefSchema>

export const ruleDefSchema = z.strictObject({
  id: idSchema,
  /** Owner: exactly one of template / thing (checked in consistency.ts to report it with a path). */
  template: idSchema.optional(),
  thing: idSchema.optional(),
  description: z.string().max(1024).optional(),
  enabled: z.boolean().optional(),
  when: z.string().min(1),
  /** edge (default): fire on a false->true transition; level: fire on every true evaluation. */
  trigger: z.enum(['edge', 'level']).optional(),
  /** Properties whose change re-evaluates the rule; defaults to those the condition reads. */
  on: z.array(propertyNameSchema).optional(),
  /** Also evaluate on a schedule (runtime sends ticks). */
  everySeconds: z.number().int().min(1).max(86_400 * 7).optional(),
  actions: z.array(actionDefSchema).max(32),
  /** Fired on a true->false transition (e.g. to clear the alert the rule raised). */
  resetActions: z.array(actionDefSchema).max(32).optional(),
})
export type RuleDef = z.infer<typeof ruleDefSchema>

export const moduleBundleSchema = z.strictObject({
  version: z.literal(1),
  templates: z.array(templateDefSchema).optional(),
  things: z.array(thingDefSchema).optional(),
  rules: z.array(ruleDefSchema).optional(),
})
export type ModuleBundle = z.infer<typeof moduleBundleSchema>

/** Renders a zod issue path as `things[3].template`. */
export function formatPath (path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`
    else if (typeof seg === 'string' && NAME_RE.test(seg)) out += out === '' ? seg : `.${seg}`
    else out += `[${JSON.stringify(String(seg))}]`
  }
  return out
}
