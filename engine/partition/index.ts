export { partitionOf, fnv1a32 } from './hash.ts'
export { assignPartitions, diffAssignments, partitionsOf, type Assignment, type PartitionMove } from './assign.ts'
