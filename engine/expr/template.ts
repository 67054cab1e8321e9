// `${expr}` interpolation in action payloads, using the same parser and
// evaluator as conditions. A string that is exactly one `${expr}` keeps the
// expression's type ("${temperature}" -> 21.5); anything else renders as text.
// `$${` writes a literal `${`.

import { EngineError } from '../errors.ts'
import { FORBIDDEN_KEYS, isPlainObject, type JsonValue } from '../json.ts'
import type { Node } from './ast.ts'
import { collectReferences, resolveLimits, runGuarded, type CompileOptions, type References } from './compile.ts'
import { Evaluation, type EvalScope } from './evaluator.ts'
import { toText } from './functions.ts'
import type { ExpressionLimits } from './limits.ts'
import { Parser } from './parser.ts'
import { compileError } from './tokenizer.ts'

type Part = { text: string } | { expr: Node }

type TemplateNode =
  | { kind: 'const', value: JsonValue }
  | { kind: 'string', parts: Part[] }
  | { kind: 'exact', expr: Node }
  | { kind: 'array', items: TemplateNode[] }
  | { kind: 'object', entries: Array<[string, TemplateNode]> }

export interface CompiledTemplate {
  readonly root: TemplateNode
  readonly references: References
}

/** Compiles a string template; errors carry positions within that string. */
export function compileStringTemplate (source: string, options: CompileOptions = {}): CompiledTemplate {
  const node = compileString(source, options)
  return { root: node, references: collectReferences(exprsOf(node)) }
}

/**
 * Compiles every string inside a JSON value. On error the thrown EngineError's
 * `path` is the JSON path of the failing string relative to the value (`msg`, `list[2]`).
 */
export function compileJsonTemplate (value: JsonValue, options: CompileOptions = {}): CompiledTemplate {
  const node = compileValue(value, '', options)
  return { root: node, references: collectReferences(exprsOf(node)) }
}

function compileValue (v: JsonValue, path: string, options: CompileOptions): TemplateNode {
  if (typeof v === 'string') {
    try {
      return compileString(v, options)
    } catch (e) {
      if (e instanceof EngineError && path !== '') {
        throw new EngineError(e.code, e.message, { ...(e.position === undefined ? {} : { position: e.position }), path })
      }
      throw e
    }
  }
  if (Array.isArray(v)) return { kind: 'array', items: v.map((x, i) => compileValue(x, `${path}[${i}]`, options)) }
  if (isPlainObject(v)) {
    const entries: Array<[string, TemplateNode]> = []
    for (const [k, x] of Object.entries(v)) {
      if (FORBIDDEN_KEYS.has(k)) throw new EngineError('ENGINE_RULE_COMPILE', `forbidden key "${k}"`, { path })
      entries.push([k, compileValue(x as JsonValue, path === '' ? k : `${path}.${k}`, options)])
    }
    return { kind: 'object', entries }
  }
  return { kind: 'const', value: v }
}

function compileString (source: string, options: CompileOptions): TemplateNode {
  const limits = resolveLimits(options.limits)
  if (source.length > limits.maxSourceLength) {
    throw compileError(source, limits.maxSourceLength, `template longer than ${limits.maxSourceLength} characters`)
  }
  const parts: Part[] = []
  let text = ''
  let i = 0
  while (i < source.length) {
    if (source.startsWith('$${', i)) {
      text += '${'
      i += 3
      continue
    }
    if (source.startsWith('${', i)) {
      if (text !== '') parts.push({ text })
      text = ''
      const parseOpts = options.properties === undefined
        ? { maxDepth: limits.maxDepth }
        : { maxDepth: limits.maxDepth, properties: options.properties }
      const { node, end } = new Parser(source, i + 2, parseOpts).parseUntilBrace()
      parts.push({ expr: node })
      i = end + 1
      continue
    }
    text += source[i]
    i++
  }
  if (text !== '') parts.push({ text })
  if (parts.length === 0) return { kind: 'const', value: '' }
  const only = parts[0] as Part
  if (parts.length === 1 && 'expr' in only) return { kind: 'exact', expr: only.expr }
  if (parts.every((p) => 'text' in p)) return { kind: 'const', value: parts.map((p) => (p as { text: string }).text).join('') }
  return { kind: 'string', parts }
}

function exprsOf (node: TemplateNode): Node[] {
  switch (node.kind) {
    case 'const': return []
    case 'exact': return [node.expr]
    case 'string': return node.parts.flatMap((p) => ('expr' in p ? [p.expr] : []))
    case 'array': return node.items.flatMap(exprsOf)
    case 'object': return node.entries.flatMap(([, n]) => exprsOf(n))
  }
}

/** Renders a template. One step budget covers the whole value. */
export function renderTemplate (tpl: CompiledTemplate, scope: EvalScope, limits?: Partial<ExpressionLimits>): JsonValue {
  const l = resolveLimits(limits)
  const ev = new Evaluation(scope, l)
  return runGuarded(() => render(tpl.root, ev))
}

function render (node: TemplateNode, ev: Evaluation): JsonValue {
  switch (node.kind) {
    case 'const': return node.value
    case 'exact': return ev.eval(node.expr)
    case 'string': {
      let out = ''
      for (const p of node.parts) {
        out = ev.str(out + ('text' in p ? p.text : toText(ev.eval(p.expr), ev)))
      }
      return out
    }
    case 'array': return node.items.map((n) => render(n, ev))
    case 'object': {
      const o: Record<string, JsonValue> = {}
      for (const [k, n] of node.entries) o[k] = render(n, ev)
      return o
    }
  }
}
