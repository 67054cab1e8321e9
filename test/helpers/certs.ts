import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface TestPki {
  dir: string
  caCert: string
  serverCert: string
  serverKey: string
  /** Client certificate and key files for CN=`name`, signed by the CA. */
  client(name: string): { cert: string, key: string }
  read(file: string): Buffer
  cleanup(): void
}

/** A throw-away CA, a server certificate for 127.0.0.1 and client certificates, made with openssl. */
export function makePki (): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'tm-pki-'))
  const f = (n: string): string => join(dir, n)
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'ignore' }) }
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=thingmesh-test-ca', '-keyout', f('ca.key'), '-out', f('ca.crt'))
  const signed = (name: string, cn: string, ext: string): void => {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`))
    writeFileSync(f(`${name}.ext`), ext)
    ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`))
  }
  signed('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n')
  return {
    dir,
    caCert: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    client (name) {
      signed(`client-${name}`, name, 'extendedKeyUsage=clientAuth\n')
      return { cert: f(`client-${name}.crt`), key: f(`client-${name}.key`) }
    },
    read: (file) => readFileSync(file),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}
