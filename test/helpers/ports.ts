// One implementation of "a free loopback port", shared with the local-cluster script.
export { freePort } from '../../scripts/local-cluster/wait.ts'
