// Every chaos test, in campaign order (the order of the brief: the rows most
// likely to find data loss first).
import type { ChaosTest } from './report.ts'
import { r1 } from './tests/r1.ts'
import { r6 } from './tests/r6.ts'
import { s1 } from './tests/s1.ts'
import { s2 } from './tests/s2.ts'
import { s4 } from './tests/s4.ts'
import { s5 } from './tests/s5.ts'
import { s7 } from './tests/s7.ts'
import { r2 } from './tests/r2.ts'
import { r3 } from './tests/r3.ts'
import { r4 } from './tests/r4.ts'
import { r5 } from './tests/r5.ts'
import { r7 } from './tests/r7.ts'
import { r8 } from './tests/r8.ts'
import { r10 } from './tests/r10.ts'
import { r9, r11, r12, s3, s6, s8, s9, s10 } from './tests/notrun.ts'

export const TESTS: ChaosTest[] = [r1, r6, s1, s2, s4, s5, s7, r2, r3, r4, r5, r7, r8, r10, r11, r12, r9, s3, s6, s8, s9, s10]
