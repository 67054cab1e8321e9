// S9: the TLS listener, probed with `openssl s_client`: TLS 1.0 and 1.1,
// NULL and anonymous cipher suites must be refused by the node (the client is
// told to offer them at security level 0, so a refusal is the server's), TLS
// 1.2 and 1.3 accepted; with mutual TLS an expired client certificate is
// refused; and the plaintext MQTT listener is bound to loopback by default.
import { spawnSync, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { row, notRun, type ChaosTest, type Row } from '../report.ts'
import { withSimpleEnv } from '../env.ts'
import { noIpCaps, startChaosNode, startHelp, type ChaosNode } from '../cluster.ts'
import { freePort } from '../../helpers/ports.ts'
import { makePki, type TestPki } from '../../helpers/certs.ts'

interface Probe { handshake: boolean, protocol: string, cipher: string, detail: string }

/** One s_client handshake; `handshake` is true when a cipher was agreed. */
function sClient (port: number, args: string[]): Probe {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args], { input: '', encoding: 'utf8', timeout: 15_000 })
  const out = `${r.stdout}\n${r.stderr}`
  const m = /^New, (\S+), Cipher is (\S+)/m.exec(out)
  // s_client prints the agreed cipher even when the server's alert (e.g. a refused client certificate) follows it.
  const err = /alert [a-z ]+|no protocols available|no ciphers available|wrong version number|unsupported protocol|handshake failure/i.exec(out)?.[0]
  const handshake = m !== null && m[2] !== '(NONE)' && r.status === 0 && !/alert/i.test(r.stderr)
  return { handshake, protocol: m?.[1] ?? '-', cipher: m?.[2] ?? '-', detail: handshake ? `${m![1]} ${m![2]}` : `refused (${err ?? `exit ${r.status}`})` }
}

/** A client certificate signed by the test CA that expired in 2020 (openssl ca takes explicit dates; req/x509 do not). */
function expiredClientCert (pki: TestPki, name: string): { cert: string, key: string } {
  const f = (n: string): string => join(pki.dir, n)
  execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`)], { stdio: 'ignore' })
  writeFileSync(f('index.txt'), '')
  writeFileSync(f('serial.ca'), '1000\n')
  writeFileSync(f('ca.cnf'), `[ca]\ndefault_ca=c\n[c]\ndatabase=${f('index.txt')}\nnew_certs_dir=${pki.dir}\nserial=${f('serial.ca')}\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n`)
  execFileSync('openssl', ['ca', '-batch', '-config', f('ca.cnf'), '-cert', pki.caCert, '-keyfile', f('ca.key'), '-in', f(`${name}.csr`), '-out', f(`${name}.crt`), '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-notext'], { stdio: 'ignore' })
  return { cert: f(`${name}.crt`), key: f(`${name}.key`) }
}

/** Local addresses a TCP port listens on, from /proc/net/tcp{,6} (state 0A = LISTEN). */
function listenAddresses (port: number): string[] {
  const hex = port.toString(16).toUpperCase().padStart(4, '0')
  const out: string[] = []
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const r = spawnSync('cat', [file], { encoding: 'utf8' })
    for (const line of r.stdout.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 4 || f[3] !== '0A') continue
      const [addr, p] = f[1].split(':')
      if (p !== hex) continue
      out.push(addr.length === 8 ? addr.match(/../g)!.reverse().map((b) => parseInt(b, 16)).join('.') : `[${addr}]`)
    }
  }
  return out
}

export const s9: ChaosTest = {
  id: 'S9',
  title: 'TLS',
  async run () {
    if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) return [notRun('S9', 'TLS probes', 'openssl not installed (apt-get install -y openssl)')]
    const pki = makePki()
    const tlsPort = await freePort()
    try {
      return await withSimpleEnv({ nodes: 1, tag: 'S9', args: ['--tls-port', String(tlsPort), '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, ...noIpCaps()] }, async ({ redis, cluster }) => {
        const node = cluster.nodes[0]
        const rows: Row[] = []
        const weak = '-cipher'
        const refusedCases: Array<[string, string[]]> = [
          ['TLS 1.0', ['-tls1', weak, 'DEFAULT:@SECLEVEL=0']],
          ['TLS 1.1', ['-tls1_1', weak, 'DEFAULT:@SECLEVEL=0']],
          ['NULL ciphers (TLS 1.2)', ['-tls1_2', weak, 'NULL:eNULL:@SECLEVEL=0']],
          ['anonymous ciphers (TLS 1.2)', ['-tls1_2', weak, 'aNULL:ADH:AECDH:@SECLEVEL=0']],
          ['export/low ciphers (TLS 1.2)', ['-tls1_2', weak, 'EXP:LOW:DES:RC4:@SECLEVEL=0']],
        ]
        const refused = refusedCases.map(([name, args]) => ({ name, p: sClient(tlsPort, args) }))
        rows.push(row('S9', 'TLS 1.0/1.1, NULL, anonymous and export ciphers refused', refused.map((x) => `${x.name}: ${x.p.detail}`).join('; '), refused.every((x) => !x.p.handshake)))
        const accepted = [['TLS 1.2', ['-tls1_2']], ['TLS 1.3', ['-tls1_3']]].map(([name, args]) => ({ name: name as string, p: sClient(tlsPort, args as string[]) }))
        rows.push(row('S9', 'TLS 1.2 and 1.3 accepted', accepted.map((x) => `${x.name}: ${x.p.detail}`).join('; '), accepted.every((x) => x.p.handshake)))

        // Mutual TLS: a valid client certificate is accepted, an expired one refused.
        const mtlsPort = await freePort()
        const mtls: ChaosNode = await startChaosNode({ redis: redis.url, nodeId: 's9-mtls', args: ['--tls-port', String(mtlsPort), '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.caCert, ...noIpCaps()] })
        cluster.nodes.push(mtls)
        const good = pki.client('s9-good')
        const old = expiredClientCert(pki, 's9-old')
        // TLS 1.2 so the verdict on the client certificate comes within the handshake (1.3 sends it after).
        const withGood = sClient(mtlsPort, ['-tls1_2', '-cert', good.cert, '-key', good.key])
        const withOld = sClient(mtlsPort, ['-tls1_2', '-cert', old.cert, '-key', old.key])
        const withNone = sClient(mtlsPort, ['-tls1_2'])
        rows.push(row('S9', 'mutual TLS: expired client certificate refused (valid accepted, none refused)', `valid: ${withGood.detail}; expired: ${withOld.detail}; none: ${withNone.detail}`, withGood.handshake && !withOld.handshake && !withNone.handshake))

        const addrs = listenAddresses(node.port)
        const hostDefault = /--host <value>.*\(default ([^)]+)\)/.exec(startHelp())?.[1] ?? 'unknown'
        rows.push(row('S9', 'plaintext MQTT listener bound to loopback only', `--host defaults to ${hostDefault}; port ${node.port} listening on ${addrs.join(', ') || 'nothing found'}`, hostDefault.startsWith('127.') && addrs.length > 0 && addrs.every((a) => a.startsWith('127.'))))
        return rows
      })
    } finally {
      pki.cleanup()
    }
  },
}
