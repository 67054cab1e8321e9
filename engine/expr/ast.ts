// AST of the condition/template expression language. Nodes carry the offset of
// their first character so evaluation errors can point back into the source.

import type { JsonValue } from '../json.ts'

export type BinaryOp = '+' | '-' | '*' | '/' | '%' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||'
export type UnaryOp = '!' | '-'

/** Per-property views the language offers besides the current value. */
export type Namespace = 'prev' | 'changed' | 'age' | 'quality'

export type Node =
  | { kind: 'literal', at: number, value: JsonValue }
  | { kind: 'property', at: number, name: string }
  | { kind: 'view', at: number, ns: Namespace, name: string }
  | { kind: 'now', at: number }
  | { kind: 'thing', at: number, field: 'id' | 'template' }
  | { kind: 'unary', at: number, op: UnaryOp, operand: Node }
  | { kind: 'binary', at: number, op: BinaryOp, left: Node, right: Node }
  | { kind: 'conditional', at: number, test: Node, then: Node, else: Node }
  | { kind: 'member', at: number, object: Node, key: string }
  | { kind: 'index', at: number, object: Node, index: Node }
  | { kind: 'call', at: number, fn: string, args: Node[] }
