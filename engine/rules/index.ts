export { compileRule, type CompiledRule, type CompiledAction, type RuleCompileContext, type RuleCompileProblem, type RuleCompileResult } from './compile.ts'
