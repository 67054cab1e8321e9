export { raiseAlert, acknowledgeAlert, clearAlert, type AlertRecord, type AlertStatus, type AlertTransition, type AlertResult, type RaiseOptions } from './lifecycle.ts'
