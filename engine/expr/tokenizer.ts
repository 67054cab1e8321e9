// Tokenizer for the expression language. It can start at any offset and stop
// at a closing `}` so `${ ... }` template segments are tokenized in place and
// errors keep positions relative to the whole template string.

import { EngineError, type SourcePosition } from '../errors.ts'

export type TokenKind = 'number' | 'string' | 'ident' | 'punct' | 'eof'

export interface Token {
  kind: TokenKind
  /** Source text for punct/ident, decoded value for strings. */
  text: string
  value?: number
  start: number
  end: number
}

const PUNCT2 = new Set(['==', '!=', '<=', '>=', '&&', '||'])
const PUNCT1 = new Set(['+', '-', '*', '/', '%', '<', '>', '!', '?', ':', '.', ',', '(', ')', '[', ']', '}'])

export function positionAt (source: string, offset: number): SourcePosition {
  let line = 1
  let lineStart = 0
  const end = Math.min(offset, source.length)
  for (let i = 0; i < end; i++) {
    if (source.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return { offset, line, column: offset - lineStart + 1 }
}

export function compileError (source: string, offset: number, message: string): EngineError {
  const position = positionAt(source, offset)
  return new EngineError('ENGINE_RULE_COMPILE', `${message} at line ${position.line}, column ${position.column}`, { position })
}

function isIdentStart (c: string): boolean {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_'
}
function isDigit (c: string): boolean {
  return c >= '0' && c <= '9'
}

export class Tokenizer {
  private pos: number

  constructor (private readonly source: string, start = 0) {
    this.pos = start
  }

  next (): Token {
    const s = this.source
    while (this.pos < s.length && /\s/.test(s[this.pos] as string)) this.pos++
    const start = this.pos
    if (start >= s.length) return { kind: 'eof', text: '', start, end: start }
    const c = s[start] as string

    if (isDigit(c) || (c === '.' && isDigit(s[start + 1] ?? ''))) return this.number(start)
    if (c === '"' || c === "'") return this.string(start, c)
    if (isIdentStart(c)) {
      let i = start + 1
      while (i < s.length && (isIdentStart(s[i] as string) || isDigit(s[i] as string))) i++
      this.pos = i
      return { kind: 'ident', text: s.slice(start, i), start, end: i }
    }
    const two = s.slice(start, start + 2)
    if (PUNCT2.has(two)) {
      this.pos = start + 2
      return { kind: 'punct', text: two, start, end: start + 2 }
    }
    if (PUNCT1.has(c)) {
      this.pos = start + 1
      return { kind: 'punct', text: c, start, end: start + 1 }
    }
    if (c === '=') throw compileError(s, start, 'unexpected "=" (use "==" to compare)')
    if (c === '&' || c === '|') throw compileError(s, start, `unexpected "${c}" (use "${c}${c}")`)
    throw compileError(s, start, `unexpected character ${JSON.stringify(c)}`)
  }

  private number (start: number): Token {
    const s = this.source
    const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(s.slice(start, start + 64))
    // The regex cannot fail: next() only calls us on a digit or ".digit".
    const text = (m as RegExpExecArray)[0]
    const end = start + text.length
    if (isIdentStart(s[end] ?? '')) throw compileError(s, end, 'invalid number')
    const value = Number(text)
    if (!Number.isFinite(value)) throw compileError(s, start, 'number out of range')
    this.pos = end
    return { kind: 'number', text, value, start, end }
  }

  private string (start: number, quote: string): Token {
    const s = this.source
    let out = ''
    let i = start + 1
    while (i < s.length) {
      const c = s[i] as string
      if (c === quote) {
        this.pos = i + 1
        return { kind: 'string', text: out, start, end: i + 1 }
      }
      if (c === '\n') break
      if (c === '\\') {
        const e = s[i + 1]
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", $: '$', '}': '}' }
        if (e !== undefined && Object.hasOwn(simple, e)) {
          out += simple[e]
          i += 2
          continue
        }
        if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16))
          i += 6
          continue
        }
        throw compileError(s, i, 'invalid escape sequence')
      }
      out += c
      i++
    }
    throw compileError(s, start, 'unterminated string')
  }
}
