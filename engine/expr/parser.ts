// Pratt parser: tokens -> AST. All static checks happen here (unknown
// properties, unknown functions and their arity, forbidden member names,
// nesting depth) so a rule that compiles can only fail at run time on value
// types and limits.

import { FORBIDDEN_KEYS } from '../json.ts'
import type { BinaryOp, Namespace, Node } from './ast.ts'
import { lookupFunction } from './functions.ts'
import { compileError, Tokenizer, type Token } from './tokenizer.ts'

export interface ParseOptions {
  /** When given, references to other property names are compile errors. */
  properties?: ReadonlySet<string>
  maxDepth: number
}

const BINARY_BP: Readonly<Record<string, number>> = {
  '||': 20,
  '&&': 30,
  '==': 40,
  '!=': 40,
  '<': 50,
  '<=': 50,
  '>': 50,
  '>=': 50,
  '+': 60,
  '-': 60,
  '*': 70,
  '/': 70,
  '%': 70,
}
const TERNARY_BP = 10
const PREFIX_BP = 80
const POSTFIX_BP = 90

const NAMESPACES: ReadonlySet<string> = new Set<Namespace>(['prev', 'changed', 'age', 'quality'])

/** Identifiers with a meaning of their own; they cannot be property names. */
export const RESERVED_NAMES: ReadonlySet<string> = new Set([
  'true', 'false', 'null', 'now', 'thing', ...NAMESPACES,
])

export class Parser {
  private readonly tokens: Tokenizer
  private tok: Token
  private depth = 0
  // Height of every node built so far. Operator chains (`a + b + c ...`) are
  // parsed by a loop, not recursion, yet produce a deep tree that the
  // evaluator walks recursively; so the limit is on tree height, not only on
  // parser recursion.
  private readonly heights = new WeakMap<Node, number>()

  constructor (private readonly source: string, start: number, private readonly opts: ParseOptions) {
    this.tokens = new Tokenizer(source, start)
    this.tok = this.tokens.next()
  }

  /** Parses the whole source; anything left over is an error. */
  parseAll (): Node {
    const node = this.expression(0)
    if (this.tok.kind !== 'eof') throw this.unexpected()
    return node
  }

  /** Parses one expression ending at a `}`; returns it and the offset of that `}`. */
  parseUntilBrace (): { node: Node, end: number } {
    const node = this.expression(0)
    if (!this.isPunct('}')) {
      if (this.tok.kind === 'eof') throw compileError(this.source, this.tok.start, 'missing "}" closing "${"')
      throw this.unexpected()
    }
    return { node, end: this.tok.start }
  }

  private advance (): Token {
    const t = this.tok
    this.tok = this.tokens.next()
    return t
  }

  private isPunct (text: string): boolean {
    return this.tok.kind === 'punct' && this.tok.text === text
  }

  private expect (text: string): Token {
    if (!this.isPunct(text)) throw this.unexpected(`expected "${text}"`)
    return this.advance()
  }

  private unexpected (hint?: string): Error {
    const t = this.tok
    const what = t.kind === 'eof' ? 'end of expression' : `"${this.source.slice(t.start, t.end)}"`
    return compileError(this.source, t.start, `unexpected ${what}${hint !== undefined ? `, ${hint}` : ''}`)
  }

  private expression (minBp: number): Node {
    if (++this.depth > this.opts.maxDepth) {
      throw compileError(this.source, this.tok.start, `expression nested deeper than ${this.opts.maxDepth}`)
    }
    let left = this.prefix()
    for (;;) {
      const t = this.tok
      if (t.kind !== 'punct') break
      if (t.text === '.' || t.text === '[' || t.text === '(') {
        if (POSTFIX_BP < minBp) break
        left = this.postfix(left)
        continue
      }
      if (t.text === '?') {
        if (TERNARY_BP < minBp) break
        this.advance()
        const then = this.expression(0)
        this.expect(':')
        // Right-associative: a ? b : c ? d : e == a ? b : (c ? d : e)
        const otherwise = this.expression(TERNARY_BP)
        left = this.built({ kind: 'conditional', at: left.at, test: left, then, else: otherwise }, [left, then, otherwise])
        continue
      }
      const bp = Object.hasOwn(BINARY_BP, t.text) ? BINARY_BP[t.text] as number : undefined
      if (bp === undefined || bp < minBp) break
      this.advance()
      const right = this.expression(bp + 1)
      left = this.built({ kind: 'binary', at: left.at, op: t.text as BinaryOp, left, right }, [left, right])
    }
    this.depth--
    return left
  }

  private built (node: Node, children: readonly Node[]): Node {
    let h = 0
    for (const c of children) h = Math.max(h, this.heights.get(c) ?? 1)
    if (h + 1 > this.opts.maxDepth) {
      throw compileError(this.source, node.at, `expression nested deeper than ${this.opts.maxDepth}`)
    }
    this.heights.set(node, h + 1)
    return node
  }

  private prefix (): Node {
    const t = this.advance()
    switch (t.kind) {
      case 'number':
        return { kind: 'literal', at: t.start, value: t.value as number }
      case 'string':
        return { kind: 'literal', at: t.start, value: t.text }
      case 'ident':
        return this.identifier(t)
      case 'punct':
        if (t.text === '(') {
          const inner = this.expression(0)
          this.expect(')')
          return inner
        }
        if (t.text === '!' || t.text === '-') {
          const operand = this.expression(PREFIX_BP)
          return this.built({ kind: 'unary', at: t.start, op: t.text, operand }, [operand])
        }
        break
      case 'eof':
        break
    }
    this.tok = t
    throw this.unexpected()
  }

  private identifier (t: Token): Node {
    const name = t.text
    switch (name) {
      case 'true': return { kind: 'literal', at: t.start, value: true }
      case 'false': return { kind: 'literal', at: t.start, value: false }
      case 'null': return { kind: 'literal', at: t.start, value: null }
      case 'now': return { kind: 'now', at: t.start }
      case 'thing': {
        const field = this.dottedName(name)
        if (field.text !== 'id' && field.text !== 'template') {
          throw compileError(this.source, field.start, `unknown field "thing.${field.text}" (use thing.id or thing.template)`)
        }
        return { kind: 'thing', at: t.start, field: field.text }
      }
    }
    if (NAMESPACES.has(name)) {
      const prop = this.dottedName(name)
      this.checkProperty(prop)
      return { kind: 'view', at: t.start, ns: name as Namespace, name: prop.text }
    }
    if (this.isPunct('(')) return this.call(t)
    this.checkProperty(t)
    return { kind: 'property', at: t.start, name }
  }

  private dottedName (prefix: string): Token {
    if (!this.isPunct('.')) throw this.unexpected(`"${prefix}" must be followed by ".name"`)
    this.advance()
    if (this.tok.kind !== 'ident') throw this.unexpected('expected a name')
    return this.advance()
  }

  private checkProperty (t: Token): void {
    if (FORBIDDEN_KEYS.has(t.text)) throw compileError(this.source, t.start, `forbidden name "${t.text}"`)
    const props = this.opts.properties
    if (props !== undefined && !props.has(t.text)) {
      throw compileError(this.source, t.start, `unknown property "${t.text}"`)
    }
  }

  private call (t: Token): Node {
    const spec = lookupFunction(t.text)
    if (spec === undefined) throw compileError(this.source, t.start, `unknown function "${t.text}"`)
    this.advance() // (
    const args: Node[] = []
    if (!this.isPunct(')')) {
      for (;;) {
        args.push(this.expression(0))
        if (this.isPunct(',')) {
          this.advance()
          continue
        }
        break
      }
    }
    this.expect(')')
    if (args.length < spec.minArgs || args.length > spec.maxArgs) {
      const want = spec.minArgs === spec.maxArgs ? `${spec.minArgs}` : `${spec.minArgs} to ${spec.maxArgs}`
      throw compileError(this.source, t.start, `${t.text}() takes ${want} argument(s), got ${args.length}`)
    }
    return this.built({ kind: 'call', at: t.start, fn: t.text, args }, args)
  }

  private postfix (object: Node): Node {
    const t = this.advance()
    if (t.text === '.') {
      if (this.tok.kind !== 'ident') throw this.unexpected('expected a member name')
      const key = this.advance()
      if (FORBIDDEN_KEYS.has(key.text)) throw compileError(this.source, key.start, `forbidden member "${key.text}"`)
      return this.built({ kind: 'member', at: object.at, object, key: key.text }, [object])
    }
    if (t.text === '[') {
      const index = this.expression(0)
      this.expect(']')
      if (index.kind === 'literal' && typeof index.value === 'string' && FORBIDDEN_KEYS.has(index.value)) {
        throw compileError(this.source, index.at, `forbidden member "${index.value}"`)
      }
      return this.built({ kind: 'index', at: object.at, object, index }, [object, index])
    }
    throw compileError(this.source, t.start, 'only built-in functions can be called')
  }
}
