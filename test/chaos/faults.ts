// Fault injectors. All act on a PID we started, a proxy we own, or a network
// namespace we created; each is bounded and undone by its own teardown.
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net'
import { spawnSync } from 'node:child_process'
import { freePort } from '../helpers/ports.ts'

export function signal (pid: number, sig: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT' | 'SIGTERM'): void {
  process.kill(pid, sig)
}

/**
 * - pass:  bytes flow both ways;
 * - pause: nothing is forwarded, bytes are buffered and released on `pass` (a stalled peer);
 * - drop:  bytes are read and thrown away, connections stay open (a black hole, like iptables DROP);
 * - delay: every chunk is forwarded after `delayMs`.
 */
export type ProxyMode = 'pass' | 'pause' | 'drop' | 'delay'

export interface TcpProxy {
  port: number
  mode: ProxyMode
  set(mode: ProxyMode, delayMs?: number): void
  /** Resets every open connection (RST-like). */
  cut(): void
  connections(): number
  close(): Promise<void>
}

/** A TCP proxy on 127.0.0.1 in front of `targetPort`. */
export async function startProxy (targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const port = await freePort()
  const pairs = new Set<[Socket, Socket]>()
  let delayMs = 0
  const held: Array<() => void> = []
  const proxy: TcpProxy = {
    port,
    mode: 'pass',
    set (mode, d = 0) {
      proxy.mode = mode
      delayMs = d
      if (mode !== 'pause') for (const f of held.splice(0)) f()
    },
    cut () { for (const [a, b] of pairs) { a.destroy(); b.destroy() } },
    connections: () => pairs.size,
    async close () {
      proxy.cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  const pipe = (from: Socket, to: Socket): void => {
    from.on('data', (chunk: Buffer) => {
      const send = (): void => { if (!to.destroyed) to.write(chunk) }
      switch (proxy.mode) {
        case 'pass': send(); break
        case 'drop': break
        case 'pause': held.push(() => { if (proxy.mode === 'drop') return; send() }); break
        case 'delay': setTimeout(send, delayMs); break
      }
    })
  }
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(targetPort, targetHost)
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    const end = (): void => { pairs.delete(pair); client.destroy(); upstream.destroy() }
    client.on('error', end); upstream.on('error', end)
    client.on('close', end); upstream.on('close', end)
    client.setNoDelay(true); upstream.setNoDelay(true)
    pipe(client, upstream)
    pipe(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return proxy
}

export interface Netns {
  name: string
  /** Address of the namespace side (where a node listens). */
  nsAddr: string
  /** Address of the host side (where Redis must also listen). */
  hostAddr: string
  /** iptables DROP of TCP to/from `port` inside the namespace. */
  cut(port: number): void
  heal(port: number): void
  destroy(): void
}

/** Why a netns cannot be made here, or null if it can (root with ip and iptables). */
export function netnsUnavailable (): string | null {
  if (process.getuid?.() !== 0) return 'not root: the netns+iptables partition needs root (the TCP-proxy black hole is used instead)'
  for (const bin of ['ip', 'iptables']) {
    if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `${bin} not installed (apt-get install -y ${bin === 'ip' ? 'iproute2' : 'iptables'})`
  }
  return null
}

function sh (args: string[], allowFail = false): void {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8' })
  if (r.status !== 0 && !allowFail) throw new Error(`${args.join(' ')} failed: ${r.stderr}`)
}

/** A private namespace linked to the host by a veth pair on 10.231.<k>.0/30. */
export function createNetns (k = 7): Netns {
  const name = `tmchaos${process.pid}`
  const hv = `tmh${process.pid % 100000}`
  const nv = `tmn${process.pid % 100000}`
  const hostAddr = `10.231.${k}.1`
  const nsAddr = `10.231.${k}.2`
  const destroy = (): void => {
    sh(['ip', 'netns', 'del', name], true)
    sh(['ip', 'link', 'del', hv], true)
  }
  destroy()
  try {
    sh(['ip', 'netns', 'add', name])
    sh(['ip', 'link', 'add', hv, 'type', 'veth', 'peer', 'name', nv])
    sh(['ip', 'link', 'set', nv, 'netns', name])
    sh(['ip', 'addr', 'add', `${hostAddr}/30`, 'dev', hv])
    sh(['ip', 'link', 'set', hv, 'up'])
    sh(['ip', 'netns', 'exec', name, 'ip', 'addr', 'add', `${nsAddr}/30`, 'dev', nv])
    sh(['ip', 'netns', 'exec', name, 'ip', 'link', 'set', nv, 'up'])
    sh(['ip', 'netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up'])
  } catch (err) { destroy(); throw err }
  const rule = (op: '-A' | '-D', port: number): void => {
    sh(['ip', 'netns', 'exec', name, 'iptables', op, 'OUTPUT', '-p', 'tcp', '-d', hostAddr, '--dport', String(port), '-j', 'DROP'], op === '-D')
    sh(['ip', 'netns', 'exec', name, 'iptables', op, 'INPUT', '-p', 'tcp', '-s', hostAddr, '--sport', String(port), '-j', 'DROP'], op === '-D')
  }
  return { name, nsAddr, hostAddr, cut: (p) => rule('-A', p), heal: (p) => rule('-D', p), destroy }
}
