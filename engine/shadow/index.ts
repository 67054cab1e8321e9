export { emptyShadow, setDesired, computeDelta, checkVersion, deltaIsEmpty, type ShadowState, type DesiredEntry, type Delta, type ShadowResult } from './shadow.ts'
