import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ENGINE_ERRORS, EngineError, formatProblem } from '../../../engine/index.ts'
import { RUNTIME_ERRORS } from '../../../engine/runtime/errors.ts'

const engineDir = new URL('../../../engine/', import.meta.url).pathname

function sources (dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

t.test('every code is ENGINE_ prefixed and described', async (t) => {
  for (const [code, text] of Object.entries(ENGINE_ERRORS)) {
    t.match(code, /^ENGINE_[A-Z_]+$/)
    t.ok(text.length > 10, `${code} has a description`)
  }
})

t.test('every code in the catalogue is used somewhere, and nothing outside it', async (t) => {
  const code = sources(engineDir).filter((p) => !p.endsWith('errors.ts')).map((p) => readFileSync(p, 'utf8')).join('\n')
  // Whole identifiers only: DEFAULT_ENGINE_OPTIONS is not a code.
  const used = new Set(code.match(/\bENGINE_[A-Z_]+/g))
  for (const c of Object.keys(ENGINE_ERRORS)) t.ok(used.has(c), `${c} is used`)
  for (const c of used) {
    if (c === 'ENGINE_ERRORS' || c === 'ENGINE_LUA_DIR' || c.endsWith('_')) continue // the catalogue itself, a constant, or a prefix in a comment
    // The runtime (engine/runtime/errors.ts) keeps its own I/O-side catalogue.
    t.ok(Object.hasOwn(ENGINE_ERRORS, c) || Object.hasOwn(RUNTIME_ERRORS, c), `${c} is in a catalogue`)
  }
})

t.test('EngineError carries code, position and problems', async (t) => {
  const e = new EngineError('ENGINE_RULE_COMPILE', 'bad', { position: { offset: 1, line: 1, column: 2 }, path: 'when' })
  t.equal(e.code, 'ENGINE_RULE_COMPILE')
  t.same(e.toProblem('rules[0].when'), { code: 'ENGINE_RULE_COMPILE', path: 'rules[0].when', message: 'bad', position: { offset: 1, line: 1, column: 2 } })
  t.equal(formatProblem({ code: 'ENGINE_IN_USE', path: 'changes[0].id', message: 'used' }), 'changes[0].id: used')
  t.equal(formatProblem({ code: 'ENGINE_IN_USE', path: '', message: 'used' }), 'used')
})
