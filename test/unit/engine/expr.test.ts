import t, { type Test } from 'tap'
import {
  compileExpression, evaluateExpression, compileJsonTemplate, compileStringTemplate, renderTemplate,
  EngineError, type EvalScope, type JsonValue,
} from '../../../engine/index.ts'

const values: Record<string, JsonValue> = {
  temperature: 81.5,
  name: 'Pump',
  settings: { rampSeconds: 10, list: [1, 2, 3], nested: { a: 'x' } },
  location: { lat: 48.1, lon: 11.5 },
  big: 'x'.repeat(40_000),
  tags: ['a', 'b'],
}

function scope (over: Partial<EvalScope> = {}): EvalScope {
  return {
    value: (n) => (Object.hasOwn(values, n) ? values[n] as JsonValue : null),
    prev: (n) => (n === 'temperature' ? 70 : null),
    changed: (n) => n === 'temperature',
    age: (n) => (n === 'temperature' ? 1500 : null),
    quality: () => 'good',
    now: 1_000_000,
    thing: { id: 'pump-1', template: 'Pump' },
    ...over,
  }
}

const run = (src: string, s = scope()): JsonValue => evaluateExpression(compileExpression(src), s)

function compileFails (t: Test, src: string, re: RegExp, pos?: { line: number, column: number }): void {
  try {
    compileExpression(src)
    t.fail(`expected compile error for ${JSON.stringify(src.slice(0, 40))}`)
  } catch (e) {
    t.ok(e instanceof EngineError, 'EngineError')
    const err = e as EngineError
    t.equal(err.code, 'ENGINE_RULE_COMPILE')
    t.match(err.message, re)
    if (pos !== undefined) t.match(err.position, pos, 'position')
  }
}

function evalFails (t: Test, src: string, code: string, s = scope()): void {
  const c = compileExpression(src)
  t.throws(() => evaluateExpression(c, s), { code }, src.slice(0, 40))
}

t.test('literals, arithmetic and precedence', async (t) => {
  t.equal(run('1 + 2 * 3'), 7)
  t.equal(run('(1 + 2) * 3'), 9)
  t.equal(run('10 - 4 - 3'), 3, 'left associative')
  t.equal(run('2 * -3'), -6)
  t.equal(run('7 % 4'), 3)
  t.equal(run('1.5e2'), 150)
  t.equal(run('.5 + .25'), 0.75)
  t.equal(run('"a" + \'b\' + 1'), 'ab1')
  t.equal(run('"tab\\tend"'), 'tab\tend')
  t.equal(run('"\\u0041"'), 'A')
  t.equal(run('null'), null)
  t.equal(run('!true'), false)
})

t.test('comparison, logic and ternary', async (t) => {
  t.equal(run('1 < 2 && 2 <= 2 && 3 > 2 && 3 >= 4'), false)
  t.equal(run('"abc" < "abd"'), true)
  t.equal(run('1 == 1 && 1 != 2'), true)
  t.equal(run('settings == settings'), true, 'deep equality')
  t.equal(run('tags == tags && tags != settings'), true)
  t.equal(run('null || "fallback"'), 'fallback', '|| returns an operand')
  t.equal(run('0 && missingFn'), 0, 'short-circuit skips right side')
  t.equal(run('false ? 1 : true ? 2 : 3'), 2, 'ternary is right associative')
  t.equal(run('unknownProp > 5'), false, 'ordering with null is false')
  t.equal(run('unknownProp == null'), true)
})

t.test('property views and now/thing', async (t) => {
  t.equal(run('temperature'), 81.5)
  t.equal(run('temperature - prev.temperature'), 11.5)
  t.equal(run('changed.temperature && !changed.name'), true)
  t.equal(run('age.temperature'), 1500)
  t.equal(run('age.name'), null)
  t.equal(run('quality.temperature'), 'good')
  t.equal(run('now'), 1_000_000)
  t.equal(run('thing.id + "/" + thing.template'), 'pump-1/Pump')
  t.equal(run('location.lat'), 48.1)
  t.equal(run('settings.nested.a'), 'x')
  t.equal(run('settings["rampSeconds"]'), 10)
  t.equal(run('settings.list[1]'), 2)
  t.equal(run('settings.list[99]'), null)
  t.equal(run('settings.missing'), null)
  t.equal(run('unknownProp.anything'), null, 'member of null is null')
})

t.test('functions', async (t) => {
  t.equal(run('abs(-2) + min(3, 1, 2) + max(1, 5)'), 8)
  t.equal(run('round(2.345, 2)'), 2.35)
  t.equal(run('round(2.5)'), 3)
  t.equal(run('floor(1.9) + ceil(1.1) + sqrt(16)'), 7)
  t.equal(run('len(name) + len(tags) + len(settings)'), 9)
  t.equal(run('contains(name, "um") && contains(tags, "b") && !contains(tags, "z")'), true)
  t.equal(run('startsWith(name, "Pu")'), true)
  t.equal(run('lower(name) + upper(name)'), 'pumpPUMP')
  t.equal(run('number("12.5") + number(true)'), 13.5)
  t.equal(run('number("0x10")'), null, 'hex is not a number')
  t.equal(run('number("")'), null)
  t.equal(run('string(1) + string(location)'), '1{"lat":48.1,"lon":11.5}')
  t.equal(run('isNull(nothing) && !isNull(name)'), true)
  evalFails(t, 'sqrt(-1)', 'ENGINE_EVAL_TYPE')
  evalFails(t, 'abs("x")', 'ENGINE_EVAL_TYPE')
})

t.test('run-time type errors are EngineErrors, never host exceptions', async (t) => {
  evalFails(t, '"a" - 1', 'ENGINE_EVAL_TYPE')
  evalFails(t, '1 / 0', 'ENGINE_EVAL_TYPE')
  evalFails(t, 'settings + 1', 'ENGINE_EVAL_TYPE')
  evalFails(t, '1 < "a"', 'ENGINE_EVAL_TYPE')
  evalFails(t, 'name.length', 'ENGINE_EVAL_TYPE')
  evalFails(t, 'tags.length', 'ENGINE_EVAL_TYPE')
  evalFails(t, '-name', 'ENGINE_EVAL_TYPE')
})

t.test('escape attempts are rejected', async (t) => {
  compileFails(t, 'name.constructor', /forbidden member "constructor"/)
  compileFails(t, 'settings.__proto__', /forbidden member "__proto__"/)
  compileFails(t, 'settings["prototype"]', /forbidden member "prototype"/)
  compileFails(t, 'constructor', /forbidden name/)
  compileFails(t, '__proto__', /forbidden name/)
  compileFails(t, 'name.constructor.constructor("return process")()', /forbidden member/)
  compileFails(t, 'eval("1")', /unknown function "eval"/)
  compileFails(t, 'Function("x")', /unknown function "Function"/)
  compileFails(t, 'process.exit(1)', /only built-in functions can be called/)
  // Computed keys are checked at run time as well.
  evalFails(t, 'settings["__pro" + "to__"]', 'ENGINE_EVAL_FORBIDDEN')
  evalFails(t, 'settings["constr" + "uctor"]', 'ENGINE_EVAL_FORBIDDEN')
  // Inherited members of plain objects are invisible.
  t.equal(run('settings["toString"]'), null)
  t.equal(run('settings["hasOwnProperty"]'), null)
  // Unknown identifiers read only through the scope; the host global is unreachable.
  t.equal(run('globalThis'), null)
  t.equal(run('process'), null)
})

t.test('compile errors carry line, column and offset', async (t) => {
  compileFails(t, 'temperature >', /unexpected end of expression at line 1, column 14/, { line: 1, column: 14 })
  compileFails(t, 'temperature > 5 &&\n  (speed = 3)', /use "=="/, { line: 2, column: 10 })
  compileFails(t, '"unterminated', /unterminated string/, { line: 1, column: 1 })
  compileFails(t, '1 + foo(2)', /unknown function "foo"/, { line: 1, column: 5 })
  compileFails(t, 'max()', /max\(\) takes 1 to 16 argument/)
  compileFails(t, 'abs(1, 2)', /abs\(\) takes 1 argument/)
  compileFails(t, 'prev', /"prev" must be followed by ".name"/)
  compileFails(t, 'thing.secret', /unknown field "thing.secret"/)
  compileFails(t, '1 2', /unexpected "2"/)
  compileFails(t, '12abc', /invalid number/)
  compileFails(t, 'a # b', /unexpected character "#"/)
  compileFails(t, 'a & b', /use "&&"/)
  compileFails(t, '"bad \\q escape"', /invalid escape/)
  try {
    compileExpression('a +\n\n   *')
    t.fail('should throw')
  } catch (e) {
    t.same((e as EngineError).position, { offset: 8, line: 3, column: 4 })
  }
})

t.test('unknown properties are compile errors when the property set is given', async (t) => {
  const properties = new Set(['temperature'])
  t.ok(compileExpression('temperature > 1 && prev.temperature < 2', { properties }))
  t.throws(() => compileExpression('temprature > 1', { properties }), { code: 'ENGINE_RULE_COMPILE', message: /unknown property "temprature"/ })
  t.throws(() => compileExpression('age.speed > 1', { properties }), { code: 'ENGINE_RULE_COMPILE', message: /unknown property "speed"/ })
})

t.test('references are collected for triggering', async (t) => {
  const c = compileExpression('temperature > limit && age.running > 10 && prev.speed != speed')
  t.same([...c.references.properties].sort(), ['limit', 'running', 'speed', 'temperature'])
  t.equal(c.references.timeDependent, true)
  t.equal(compileExpression('a > b').references.timeDependent, false)
  t.equal(compileExpression('now > 5').references.timeDependent, true)
})

t.test('size, depth and budget limits bound every evaluation', async (t) => {
  compileFails(t, '('.repeat(200) + '1' + ')'.repeat(200), /nested deeper than 100/)
  compileFails(t, '-'.repeat(500) + '1', /nested deeper than 100/)
  compileFails(t, '!'.repeat(500) + 'true', /nested deeper than 100/)
  // Operator chains are parsed iteratively but still produce a deep tree.
  compileFails(t, Array(150).fill('1').join(' + '), /nested deeper than 100/)
  compileFails(t, 'x'.repeat(5000), /longer than 4096/)
  t.equal(run(Array(50).fill('1').join(' + ')), 50, 'moderate chains are fine')

  // String growth: each doubling is checked before the string is built.
  const doubling = 'big + big'
  evalFails(t, doubling, 'ENGINE_EVAL_LIMIT')
  evalFails(t, 'upper(big + "x") + big', 'ENGINE_EVAL_LIMIT')
  const c = compileExpression('len(big + big)')
  // Five nodes, but concatenating 80k characters costs ~300 steps.
  t.throws(() => evaluateExpression(c, scope(), { maxStringLength: 1_000_000, maxSteps: 200 }), { code: 'ENGINE_EVAL_BUDGET' }, 'large strings cost steps too')
  t.equal(evaluateExpression(c, scope(), { maxStringLength: 1_000_000 }), 80_000)

  // A wide expression (no recursion) is still bounded by the step budget.
  const wide = Array(40).fill('(' + Array(40).fill('1').join(' + ') + ')').join(' * 0 + ')
  const w = compileExpression(wide, { limits: { maxSourceLength: 100_000 } })
  t.throws(() => evaluateExpression(w, scope(), { maxSteps: 500 }), { code: 'ENGINE_EVAL_BUDGET' })
  t.equal(evaluateExpression(w, scope()), 40)

  // contains() over a big array is charged per element.
  const arr = Array.from({ length: 20_000 }, (_, i) => i)
  const s = scope({ value: (n) => (n === 'arr' ? arr : null) })
  t.throws(() => evaluateExpression(compileExpression('contains(arr, -1)'), s), { code: 'ENGINE_EVAL_BUDGET' })
})

t.test('templates interpolate with the same evaluator', async (t) => {
  const tpl = compileJsonTemplate({
    exact: '${temperature}',
    text: 'T=${temperature}°C on ${thing.id}',
    escaped: 'cost: $${temperature}',
    braces: '${"}" + name}',
    list: ['${now}', 3, true, null],
    nested: { loc: '${location}' },
    plain: 'no interpolation',
  })
  t.same(renderTemplate(tpl, scope()), {
    exact: 81.5,
    text: 'T=81.5°C on pump-1',
    escaped: 'cost: ${temperature}',
    braces: '}Pump',
    list: [1_000_000, 3, true, null],
    nested: { loc: { lat: 48.1, lon: 11.5 } },
    plain: 'no interpolation',
  })
  t.equal(renderTemplate(compileStringTemplate('${settings}!'), scope()), '{"rampSeconds":10,"list":[1,2,3],"nested":{"a":"x"}}!')
  t.same([...compileStringTemplate('a ${x} b ${prev.y}').references.properties].sort(), ['x', 'y'])
})

t.test('template compile errors point into the string and the JSON path', async (t) => {
  try {
    compileJsonTemplate({ msg: 'ok', deep: { text: 'value ${temperature +}' } })
    t.fail('should throw')
  } catch (e) {
    const err = e as EngineError
    t.equal(err.code, 'ENGINE_RULE_COMPILE')
    t.equal(err.path, 'deep.text')
    t.match(err.position, { line: 1, column: 22 })
  }
  t.throws(() => compileStringTemplate('x ${temperature'), { code: 'ENGINE_RULE_COMPILE', message: /missing "}"/ })
  t.throws(() => compileJsonTemplate(JSON.parse('{"__proto__": 1}')), { code: 'ENGINE_RULE_COMPILE', message: /forbidden key/ })
  const huge = compileStringTemplate('${big}${big}')
  t.throws(() => renderTemplate(huge, scope()), { code: 'ENGINE_EVAL_LIMIT' })
})

t.test('evaluation errors: EngineErrors with code and message, made without a stack trace (a rule over a missing value fails on every input)', async (t) => {
  const limit = Error.stackTraceLimit
  let err: unknown
  try { run('temperature + missing > 1500') } catch (e) { err = e }
  t.ok(err instanceof EngineError && err instanceof Error)
  t.match(err, { code: 'ENGINE_EVAL_TYPE', message: 'operator "+" cannot be applied to null' })
  t.notMatch((err as Error).stack ?? '', /\n\s+at /, 'no stack frames captured')
  t.equal(Error.stackTraceLimit, limit, 'the stack trace limit is restored')
  try { run('round(1, 99)') } catch (e) { err = e }
  t.match(err, { code: 'ENGINE_EVAL_TYPE' }, 'function errors too')
  t.notMatch((err as Error).stack ?? '', /\n\s+at /)
})
