// S3: authentication bypass attempts, with raw CONNECT packets so every
// malformed variant reaches the node exactly as written. Three nodes' worth of
// settings on one Redis:
//   - "logic": throttling lifted, each bypass case tried a few times;
//   - "volume": default throttle (10 failures/min/address), a few thousand
//     attempts from 10 loopback addresses (127.0.0.x: Linux routes all of
//     127/8 to lo, so each is a distinct remote address for the node);
//   - "timing": cache off, right vs wrong vs unknown-user CONNECTs interleaved.
import { connect as tcpConnect, type Socket } from 'node:net'
import { row, info, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { startChaosNode, noIpCaps, type ChaosNode } from '../cluster.ts'
import { adminConnect } from '../admin.ts'

const ADMIN_PASSWORD = 'chaos-admin-secret-1'

interface ConnectFields { clientId: string, username?: Buffer, password?: Buffer, /** Overrides the computed connect flags. */ flags?: number }

const str = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b])
function varint (n: number): Buffer {
  const out: number[] = []
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b) } while (n > 0)
  return Buffer.from(out)
}
/** A CONNECT (MQTT 3.1.1) built by hand: any field may be empty, contain NUL or be missing. */
function connectPacket (f: ConnectFields): Buffer {
  const flags = f.flags ?? (0x02 | (f.username !== undefined ? 0x80 : 0) | (f.password !== undefined ? 0x40 : 0))
  const body = Buffer.concat([
    str(Buffer.from('MQTT')), Buffer.from([4, flags, 0, 30]), str(Buffer.from(f.clientId)),
    ...(f.username !== undefined ? [str(f.username)] : []),
    ...(f.password !== undefined ? [str(f.password)] : []),
  ])
  return Buffer.concat([Buffer.from([0x10]), varint(body.length), body])
}

interface Outcome {
  /** CONNACK return code, or null when the socket closed (or timed out) without one. */
  rc: number | null
  ms: number
  socket: Socket
}

/** Sends `bytes` on a fresh socket from `localAddress`; resolves at the first CONNACK or close. Keeps the socket open on rc 0. */
function attempt (node: ChaosNode, bytes: Buffer, localAddress = '127.0.0.1', timeoutMs = 15_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ port: node.port, host: node.host, localAddress })
    let t0 = 0
    let buf = Buffer.alloc(0)
    let done = false
    const finish = (rc: number | null): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      if (rc !== 0) socket.destroy()
      resolve({ rc, ms: t0 ? Number(process.hrtime.bigint() - BigInt(t0)) / 1e6 : 0, socket })
    }
    const timer = setTimeout(() => finish(null), timeoutMs)
    socket.on('error', () => finish(null))
    socket.on('close', () => finish(null))
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      if (buf.length >= 4 && buf[0] === 0x20) finish(buf[3])
    })
    socket.once('connect', () => { t0 = Number(process.hrtime.bigint()); socket.write(bytes) })
  })
}

/** Resolves true if the socket is still open and answers a PINGREQ. */
function stillServed (s: Socket): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) { resolve(false); return }
    const timer = setTimeout(() => resolve(false), 5000)
    s.once('close', () => { clearTimeout(timer); resolve(false) })
    s.on('data', (d: Buffer) => { if (d.includes(0xd0)) { clearTimeout(timer); resolve(true) } })
    s.write(Buffer.from([0xc0, 0x00]))
  })
}

const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1] ?? NaN }

export const s3: ChaosTest = {
  id: 'S3',
  title: 'Auth bypass',
  async run (ctx) {
    const common = ['--admin-password', ADMIN_PASSWORD, '--allow-anonymous', 'false', ...noIpCaps()]
    return withSimpleEnv({ nodes: 1, tag: 'S3', args: [...common, '--auth-failures-per-minute', '100000'] }, async ({ redis, cluster }) => {
      const logic = cluster.nodes[0]
      const rows: Row[] = []
      const admin = await adminConnect({ host: logic.host, port: logic.port }, 'admin', ADMIN_PASSWORD)
      try {
        for (const [username, role] of [['tenantA', 'device'], ['tenantB', 'device'], ['app1', 'app']]) {
          const r = await admin.call('users/put', { username, role, password: `${username}-pw-1` }, 30_000)
          if (!r.ok) throw new Error(`users/put ${username}: ${r.error?.code}`)
        }
      } finally { await admin.close() }
      const B = (s: string): Buffer => Buffer.from(s)
      let n = 0
      const id = (p: string): string => `${p}-${++n}`
      // Each case: what it is, the bytes. None of them may get CONNACK 0.
      const cases = (): Array<{ name: string, bytes: Buffer }> => [
        { name: 'no credentials (anonymous off)', bytes: connectPacket({ clientId: id('s3-anon') }) },
        { name: 'empty username', bytes: connectPacket({ clientId: id('s3-e'), username: B(''), password: B('x') }) },
        { name: 'empty username and password', bytes: connectPacket({ clientId: id('s3-ee'), username: B(''), password: B('') }) },
        { name: 'NUL username', bytes: connectPacket({ clientId: id('s3-nul'), username: B('\u0000'), password: B('app1-pw-1') }) },
        { name: 'username with NUL suffix', bytes: connectPacket({ clientId: id('s3-nul2'), username: B('app1\u0000'), password: B('app1-pw-1') }) },
        { name: 'password without username [MQTT-3.1.2-22]', bytes: connectPacket({ clientId: id('s3-pw'), password: B('app1-pw-1') }) },
        { name: 'password flag without username flag, username field present', bytes: connectPacket({ clientId: id('s3-pw2'), username: B('app1'), password: B('app1-pw-1'), flags: 0x42 }) },
        { name: '64 KiB username', bytes: connectPacket({ clientId: id('s3-big'), username: Buffer.alloc(65_535, 0x61), password: B('x') }) },
        { name: 'wrong password', bytes: connectPacket({ clientId: id('s3-wrong'), username: B('app1'), password: B('app1-pw-2') }) },
        { name: 'unknown user', bytes: connectPacket({ clientId: id('s3-unk'), username: B('nobody'), password: B('app1-pw-1') }) },
        { name: 'right password, clientId of another tenant', bytes: connectPacket({ clientId: 'tenantB', username: B('tenantA'), password: B('tenantA-pw-1') }) },
        { name: 'right password, $-prefixed clientId', bytes: connectPacket({ clientId: '$SYS-s3', username: B('app1'), password: B('app1-pw-1') }) },
        { name: 'right password, $-prefixed clientId (device)', bytes: connectPacket({ clientId: '$tenantA', username: B('tenantA'), password: B('tenantA-pw-1') }) },
      ]

      // Part 1: every bypass case, throttling out of the way.
      const rounds = Math.max(2, Math.round(ctx.num('CHAOS_S3_ROUNDS', 5) * Math.min(1, ctx.scale * 2)))
      const granted: string[] = []
      const outcomes = new Map<string, Set<string>>()
      let tried = 0
      for (let r = 0; r < rounds; r++) {
        const res = await Promise.all(cases().map(async (c) => ({ c, o: await attempt(logic, c.bytes) })))
        for (const { c, o } of res) {
          tried++
          if (o.rc === 0) { granted.push(c.name); o.socket.destroy() }
          let set = outcomes.get(c.name)
          if (!set) { set = new Set(); outcomes.set(c.name, set) }
          set.add(o.rc === null ? 'closed' : `rc ${o.rc}`)
        }
      }
      // A replayed CONNECT on an authenticated socket [MQTT-3.1.0-2]: closed, no second CONNACK.
      const ok = await attempt(logic, connectPacket({ clientId: 'app1-replay', username: B('app1'), password: B('app1-pw-1') }))
      let replay = 'first CONNECT refused (setup problem)'
      let replayOk = false
      if (ok.rc === 0) {
        const second = await new Promise<string>((resolve) => {
          const timer = setTimeout(() => resolve('still open after 3 s'), 3000)
          ok.socket.on('data', (d: Buffer) => { if (d[0] === 0x20) { clearTimeout(timer); resolve(`second CONNACK rc ${d[3]}`) } })
          ok.socket.once('close', () => { clearTimeout(timer); resolve('closed') })
          ok.socket.write(connectPacket({ clientId: 'tenantB', username: B('tenantA'), password: B('tenantA-pw-1') }))
        })
        replay = second
        replayOk = second === 'closed'
      }
      ok.socket.destroy()
      rows.push(row('S3', `0 unauthorized sessions (${tried} bypass CONNECTs, ${cases().length} kinds, throttle lifted)`, granted.length ? `${granted.length} granted: ${[...new Set(granted)].join('; ')}` : `0 granted; ${[...outcomes].map(([k, v]) => `${k}: ${[...v].join('/')}`).join('; ')}`, granted.length === 0, { outcomes: Object.fromEntries([...outcomes].map(([k, v]) => [k, [...v]])) }))
      rows.push(row('S3', 'replayed CONNECT on an authenticated socket closes it [MQTT-3.1.0-2]', replay, replayOk))

      // A tenant cannot disconnect another tenant's session by using its clientId.
      const victim = await attempt(logic, connectPacket({ clientId: 'tenantB', username: B('tenantB'), password: B('tenantB-pw-1') }))
      const hijack = await attempt(logic, connectPacket({ clientId: 'tenantB', username: B('tenantA'), password: B('tenantA-pw-1') }))
      const victimServed = victim.rc === 0 && await stillServed(victim.socket)
      victim.socket.destroy(); hijack.socket.destroy()
      rows.push(row('S3', "a tenant cannot kick another tenant's session via its clientId", `victim CONNACK ${victim.rc}; hijack attempt ${hijack.rc === null ? 'closed' : `rc ${hijack.rc}`}; victim ${victimServed ? 'still served (PINGRESP)' : 'DISCONNECTED'}`, victim.rc === 0 && hijack.rc !== 0 && victimServed))

      // Part 2: volume under the default throttle, from 10 addresses.
      const strict = await startChaosNode({ redis: redis.url, nodeId: 's3-strict', args: [...common.filter((a) => a !== '--admin-password' && a !== ADMIN_PASSWORD)] })
      cluster.nodes.push(strict)
      const total = Math.round(ctx.num('CHAOS_S3_ATTEMPTS', 2000) * Math.min(1, ctx.scale * 2))
      const addrs = Array.from({ length: 10 }, (_v, i) => `127.0.0.${i + 2}`)
      let vGranted = 0
      const vCodes = new Map<string, number>()
      const t0 = Date.now()
      for (let k = 0; k < total; k += 200) {
        const batch = Array.from({ length: Math.min(200, total - k) }, (_v, j) => {
          const cs = cases()
          return { c: cs[(k + j) % cs.length], addr: addrs[(k + j) % addrs.length] }
        })
        const res = await Promise.all(batch.map(async ({ c, addr }) => attempt(strict, c.bytes, addr)))
        for (const o of res) {
          if (o.rc === 0) { vGranted++; o.socket.destroy() }
          const key = o.rc === null ? 'closed' : `rc ${o.rc}`
          vCodes.set(key, (vCodes.get(key) ?? 0) + 1)
        }
      }
      rows.push(row('S3', `0 unauthorized sessions (${total} CONNECTs from 10 addresses, default throttle)`, `${vGranted} granted in ${Date.now() - t0} ms; outcomes ${[...vCodes].map(([k, v]) => `${k}×${v}`).join(', ')}`, vGranted === 0))

      // Throttle: 10 wrong passwords from a fresh address, then the 11th (even right) is refused at once; another address is unaffected.
      const fresh = '127.0.0.77'
      const wrongCodes: Array<number | null> = []
      for (let i = 0; i < 10; i++) wrongCodes.push((await attempt(strict, connectPacket({ clientId: id('s3-t'), username: B('app1'), password: B('nope') }), fresh)).rc)
      const eleventh = await attempt(strict, connectPacket({ clientId: id('s3-t'), username: B('app1'), password: B('app1-pw-1') }), fresh)
      eleventh.socket.destroy()
      const other = await attempt(strict, connectPacket({ clientId: id('s3-o'), username: B('app1'), password: B('app1-pw-1') }), '127.0.0.78')
      other.socket.destroy()
      rows.push(row('S3', 'after 10 failed attempts/min from one address, further attempts throttled (refused)', `10 wrong → ${wrongCodes.map((c) => c ?? 'closed').join(',')}; 11th with the right password → ${eleventh.rc === null ? 'closed' : `rc ${eleventh.rc}`} in ${eleventh.ms.toFixed(1)} ms; another address with the right password → rc ${other.rc}`, wrongCodes.every((c) => c === 4) && eleventh.rc === 5 && other.rc === 0))

      // Part 3: timing, cache off, interleaved right / wrong / unknown user.
      const timing = await startChaosNode({ redis: redis.url, nodeId: 's3-timing', args: [...common.filter((a) => a !== '--admin-password' && a !== ADMIN_PASSWORD), '--auth-cache-ttl-ms', '0', '--auth-failures-per-minute', '100000'] })
      cluster.nodes.push(timing)
      const samples = Math.max(8, Math.round(ctx.num('CHAOS_S3_TIMING_SAMPLES', 30) * Math.min(1, ctx.scale * 2)))
      const right: number[] = []
      const wrong: number[] = []
      const unknown: number[] = []
      for (let i = 0; i < samples; i++) {
        const order = [0, 1, 2].sort(() => Math.random() - 0.5)
        for (const k of order) {
          const pw = k === 0 ? 'app1-pw-1' : 'app1-pw-X'
          const user = k === 2 ? 'nobody1' : 'app1'
          const o = await attempt(timing, connectPacket({ clientId: id('s3-time'), username: B(user), password: B(pw) }))
          o.socket.destroy()
          ;(k === 0 ? right : k === 1 ? wrong : unknown).push(o.ms)
        }
      }
      const mr = median(right); const mw = median(wrong); const mu = median(unknown)
      // Paired: each round's three attempts ran back to back, so their ratio cancels most of the machine's load drift.
      const diff = Math.abs(median(wrong.map((w, i) => w / right[i])) - 1)
      const diffU = Math.abs(median(unknown.map((u, i) => u / right[i])) - 1)
      rows.push(row('S3', 'CONNACK time independent of password correctness (< 5%, cache off)', `median of per-round ratios: wrong/right ${(diff * 100).toFixed(1)}%, unknown-user/right ${(diffU * 100).toFixed(1)}%; medians right ${mr.toFixed(1)} ms, wrong ${mw.toFixed(1)} ms, unknown user ${mu.toFixed(1)} ms (${samples} rounds)`, diff < 0.05 && diffU < 0.05, { right, wrong, unknown }))
      rows.push(info('S3', 'timing method', 'raw socket, CONNECT written → first CONNACK byte; one attempt at a time, the three kinds in random order each round; scrypt N=2^15 r=8 p=3; noise grows with the load average (table below)'))
      const down = cluster.nodes.filter((x) => !x.alive() || x.unexpectedExits() > 0).map((x) => x.nodeId)
      rows.push(row('S3', 'nodes stay up', down.length ? `${down.join(', ')} down` : 'all up', down.length === 0))
      return rows
    })
  },
}
