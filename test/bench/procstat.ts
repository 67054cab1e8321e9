/**
 * Resident memory and CPU time of processes, read from /proc (Linux), so a
 * benchmark can say which process was busy: the broker nodes, Redis, or the
 * bench's own clients.
 */
import { readFileSync } from 'node:fs'

/** Clock ticks per second of /proc/<pid>/stat times: USER_HZ, 100 on every Linux ABI Node runs on. */
const HZ = 100

export function rssMiB (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) / 1024
}

/** User + system CPU seconds a process has used so far; NaN once it is gone. */
export function cpuSeconds (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing one.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / HZ // utime, stime (fields 14 and 15)
  } catch { return NaN }
}

/**
 * Jiffies of the whole machine (all cores), from /proc/stat: busy, total, and
 * the parts of busy no process is charged with (interrupts, softirqs such as
 * loopback TCP delivery, and time a hypervisor stole).
 */
export function machineTicks (): { busy: number, total: number, kernel: number, steal: number } {
  // user nice system idle iowait irq softirq steal (guest time is already inside user)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number)
  const total = user + nice + system + idle + iowait + irq + softirq + steal
  return { busy: total - idle - iowait, total, kernel: irq + softirq, steal }
}

/** The open-file limit this process (and every child it starts) runs with. */
export function openFileLimit (): { soft: number, hard: number } {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'))
  if (!m) throw new Error('no "Max open files" in /proc/self/limits')
  const n = (s: string): number => s === 'unlimited' ? Infinity : Number(s)
  return { soft: n(m[1]), hard: n(m[2]) }
}

/** The ephemeral port range: at most this many connections to one broker address from one source address. */
export function ephemeralPorts (): number {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
  return hi - lo + 1
}

/**
 * CPU use of a set of processes over an interval, in % of one core. Take a
 * sample before and after; `percent` compares them.
 */
export function cpuSample (pids: Record<string, number>): { at: number, cpu: Record<string, number>, machine: ReturnType<typeof machineTicks> } {
  return { at: performance.now(), cpu: Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)])), machine: machineTicks() }
}

export function cpuPercent (a: ReturnType<typeof cpuSample>, b: ReturnType<typeof cpuSample>): { perProcess: Record<string, number>, machineBusy: number, kernel: number, steal: number } {
  const s = (b.at - a.at) / 1000
  const perProcess = Object.fromEntries(Object.keys(a.cpu).map((k) => [k, ((b.cpu[k] - a.cpu[k]) / s) * 100]))
  const total = Math.max(1, b.machine.total - a.machine.total)
  const share = (k: 'busy' | 'kernel' | 'steal'): number => ((b.machine[k] - a.machine[k]) / total) * 100
  return { perProcess, machineBusy: share('busy'), kernel: share('kernel'), steal: share('steal') }
}
