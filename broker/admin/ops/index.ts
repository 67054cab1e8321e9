import type { Operation } from '../operation.ts'
import { auditOps } from './audit.ts'
import { clientOps } from './clients.ts'
import { clusterOps } from './cluster.ts'
import { engineOps } from './engine.ts'
import { retainedOps } from './retained.ts'
import { sessionOps } from './sessions.ts'
import { userOps } from './users.ts'

export const allOperations: readonly Operation[] = [...clusterOps, ...clientOps, ...sessionOps, ...retainedOps, ...engineOps, ...userOps, ...auditOps]
