import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { envOf, optionSpecs } from '../../broker/config.ts'
import { renderHaproxyConfig } from '../../scripts/local-cluster/haproxy.ts'

// Deployment files checked without a container engine: docker-compose and
// haproxy validate their own files when installed (.ci/run installs both);
// the rest are parsed here and checked against each other and the code, so
// a renamed port, label, option or metric breaks this test, not a rollout.

const root = fileURLToPath(new URL('../../', import.meta.url))
const docker = join(root, 'docker')
const read = (p: string): string => readFileSync(join(root, p), 'utf8')
const knownEnv = new Set(Object.keys(optionSpecs).map(envOf))

function which (bin: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim()
  if (found) return found
  return ['/usr/sbin', '/usr/local/sbin'].map((d) => `${d}/${bin}`).find((p) => existsSync(p)) ?? null
}

/** The environment without THINGMESH_* variables, so the files alone decide. */
function cleanEnv (): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('THINGMESH_')))
}

type Obj = Record<string, any>

const compose = parse(read('docker/docker-compose.yml'), { merge: true }) as Obj
const nodeServices = Object.keys(compose.services).filter((s) => /^thingmesh\d+$/.test(s))
const haproxyCfg = read('docker/haproxy.cfg')

t.test('docker-compose.yml: topology', async (t) => {
  const services = Object.keys(compose.services)
  for (const s of ['redis-primary', 'redis-replica', 'sentinel1', 'sentinel2', 'sentinel3', 'haproxy']) t.ok(services.includes(s), `service ${s}`)
  t.equal(nodeServices.length, 3, 'three thingmesh nodes')
  const ids = new Set<string>()
  for (const name of nodeServices) {
    const env = compose.services[name].environment as Record<string, string>
    const url = /^redis\+sentinel:\/\/([^/]+)\/(\w+)$/.exec(env.THINGMESH_REDIS)
    t.ok(url, `${name} uses a redis+sentinel:// URL`)
    for (const hp of url![1].split(',')) t.ok(services.includes(hp.split(':')[0]), `${name}: Sentinel ${hp} is a service`)
    t.match(read('docker/sentinel/sentinel.conf'), new RegExp(`^sentinel monitor ${url![2]} redis-primary 6379 2$`, 'm'), 'Sentinels monitor the master the nodes ask for')
    ids.add(env.THINGMESH_NODE_ID)
    t.equal(env.THINGMESH_HOST, '0.0.0.0', `${name} listens on all interfaces of its container`)
    t.match(env.THINGMESH_ADMIN_PASSWORD, /^\$\{THINGMESH_ADMIN_PASSWORD:\?/, `${name}: admin password required from the env file, no default`)
    for (const k of Object.keys(env)) t.ok(knownEnv.has(k), `${name}: ${k} is a thingmesh option (unknown ones are silently ignored)`)
    t.equal(compose.services[name].build.dockerfile, 'docker/Dockerfile')
  }
  t.equal(ids.size, 3, 'distinct node ids')
  const published = (compose.services.haproxy.ports as string[]).map((p) => p.split(':').slice(-2).join(':'))
  t.same(published.sort(), ['1883:1883', '8083:8083', '8404:8404', '8883:8883'], 'HAProxy publishes MQTT, TLS, WebSocket and stats')
  t.ok((compose.services.haproxy.volumes as string[]).includes('./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro'), 'HAProxy runs docker/haproxy.cfg')
})

t.test('docker/.env.example: placeholders only, and the only password source', async (t) => {
  const env = Object.fromEntries(read('docker/.env.example').split('\n').filter((l) => /^\w+=/.test(l)).map((l) => l.split(/=(.*)/s).slice(0, 2)))
  t.equal(env.THINGMESH_ADMIN_PASSWORD, 'change-me', 'a placeholder, not a secret')
  t.match(read('docker/.gitignore'), /^\.env$/m, 'docker/.env is git-ignored')
  const tracked = spawnSync('git', ['ls-files', 'docker/.env'], { cwd: root, encoding: 'utf8' }).stdout.trim()
  t.equal(tracked, '', 'no docker/.env committed')
})

t.test('docker-compose config', async (t) => {
  const bin = which('docker-compose')
  if (!bin) { t.comment('SKIPPED: docker-compose is not installed (apt-get install -y docker-compose); .ci/run installs it'); return }
  const file = join(docker, 'docker-compose.yml')
  const ok = spawnSync(bin, ['--env-file', join(docker, '.env.example'), '-f', file, 'config'], { encoding: 'utf8', env: cleanEnv() })
  t.equal(ok.status, 0, `config with the example env file exits 0\n${ok.stderr}`)
  const resolved = parse(ok.stdout) as Obj
  t.equal(resolved.services.thingmesh1.environment.THINGMESH_ADMIN_PASSWORD, 'change-me', 'password taken from the env file')
  t.same(Object.keys(resolved.services).sort(), Object.keys(compose.services).sort(), 'same services as parsed here')
  const tls = spawnSync(bin, ['--env-file', join(docker, '.env.example'), '-f', file, '-f', join(docker, 'docker-compose.tls.yml'), 'config'], { encoding: 'utf8', env: cleanEnv() })
  t.equal(tls.status, 0, `config with the TLS override exits 0\n${tls.stderr}`)
  const tlsEnv = (parse(tls.stdout) as Obj).services.thingmesh2.environment as Record<string, string>
  t.equal(tlsEnv.THINGMESH_TLS_PORT, '8883', 'the override adds the TLS listener')
  t.match(tlsEnv.THINGMESH_REDIS, /^redis\+sentinel:/, 'and keeps the base settings')
  for (const k of Object.keys(tlsEnv)) t.ok(knownEnv.has(k), `TLS override: ${k} is a thingmesh option`)
  if (existsSync(join(docker, '.env'))) {
    t.comment('docker/.env exists here, so the missing-password case is not checked')
    return
  }
  const missing = spawnSync(bin, ['-f', file, 'config'], { encoding: 'utf8', env: cleanEnv() })
  t.not(missing.status, 0, 'without an env file compose refuses to start')
  t.match(missing.stderr, /THINGMESH_ADMIN_PASSWORD in docker\/\.env/, 'and says what to set')
})

t.test('haproxy.cfg: backends are the compose nodes, checked on /healthz', async (t) => {
  const nodeEnv = compose.services.thingmesh1.environment as Record<string, string>
  t.match(haproxyCfg, new RegExp(`default-server .*check port ${nodeEnv.THINGMESH_HTTP_PORT}\\b`), 'health checks go to the HTTP port')
  const backends = haproxyCfg.split(/^backend /m).slice(1)
  t.equal(backends.length, 3)
  const portOf: Record<string, string> = { thingmesh_mqtt: nodeEnv.THINGMESH_PORT, thingmesh_mqtts: nodeEnv.THINGMESH_TLS_PORT ?? '8883', thingmesh_ws: nodeEnv.THINGMESH_WS_PORT }
  for (const b of backends) {
    const name = b.split('\n')[0].trim()
    t.match(b, /http-check send meth GET uri \/healthz\n/, `${name}: GET /healthz`)
    t.match(b, /http-check expect status 200/, `${name}: only 200 is healthy`)
    const servers = [...b.matchAll(/^\s+server (\S+) (\S+):(\d+)/gm)]
    t.same(servers.map((m) => m[2]).sort(), nodeServices, `${name}: one server per node service`)
    for (const m of servers) t.equal(m[3], portOf[name], `${name}/${m[1]}: port matches the node's listener`)
  }
})

t.test('haproxy -c', async (t) => {
  const bin = which('haproxy')
  if (!bin) { t.comment('SKIPPED: haproxy is not installed (apt-get install -y haproxy); .ci/run installs it'); return }
  const docker = spawnSync(bin, ['-c', '-f', join(root, 'docker/haproxy.cfg')], { encoding: 'utf8' })
  t.equal(docker.status, 0, `docker/haproxy.cfg is valid\n${docker.stderr}`)
  const dir = mkdtempSync(join(tmpdir(), 'tm-haproxy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const local = join(dir, 'local.cfg')
  writeFileSync(local, renderHaproxyConfig({
    bindHost: '127.0.0.1',
    mqttPort: 21883,
    statsPort: 28404,
    nodes: [1, 2, 3].map((i) => ({ name: `local${i}`, host: '127.0.0.1', mqttPort: 31880 + i, httpPort: 38080 + i })),
  }))
  const res = spawnSync(bin, ['-c', '-f', local], { encoding: 'utf8' })
  t.equal(res.status, 0, `the local-process variant is valid\n${res.stderr}`)
})

t.test('Dockerfile', async (t) => {
  const df = read('docker/Dockerfile')
  t.match(df, /^FROM \S+ AS runtime$/m, 'named runtime stage')
  t.ok((df.match(/^FROM /gm) ?? []).length >= 2, 'multi-stage')
  t.match(df, /npm ci --omit=dev/, 'runtime modules without dev dependencies')
  const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> }
  t.ok(pkg.dependencies.tsx, 'tsx, which runs the sources, is a runtime dependency')
  t.match(df, /^USER (?!root|0\b)\S+$/m, 'runs as a non-root user')
  const expose = /^EXPOSE (.+)$/m.exec(df)?.[1].split(/\s+/).sort()
  t.same(expose, ['1883', '8080', '8083', '8883'])
  t.match(df, /^HEALTHCHECK[^]*?CMD .*fetch\(.*\/healthz/m, 'health check fetches /healthz with node')
  t.match(df, /^ENTRYPOINT \[.*"\/app\/bin\/thingmesh", "start"\]$/m)
  t.match(df, /THINGMESH_HOST=0\.0\.0\.0/)
  const ignore = read('docker/Dockerfile.dockerignore')
  for (const m of df.matchAll(/^COPY (?!--from)(.+) (\S+)$/gm)) {
    for (const src of m[1].split(/\s+/)) {
      t.ok(existsSync(join(root, src)), `COPY ${src} exists`)
      t.match(ignore, new RegExp(`^!${src.replace('.', '\\.')}(/\\*\\*)?$`, 'm'), `${src} is let through the ignore file`)
    }
  }
})

t.test('k8s manifests', async (t) => {
  const dir = join(docker, 'k8s')
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'))
  const docs: Obj[] = []
  for (const f of files) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      t.same(d.errors, [], `${f} parses`)
      const o = d.toJS() as Obj
      t.ok(o.apiVersion && o.kind && o.metadata?.name, `${f}: ${o.kind}/${o.metadata?.name} has apiVersion, kind and metadata.name`)
      docs.push({ ...o, file: f })
    }
  }
  const one = (kind: string, name?: string): Obj => {
    const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name))
    t.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ''}`)
    return found[0]
  }
  const kust = one('Kustomization')
  t.same([...kust.resources].sort(), files.filter((f) => f !== 'kustomization.yaml').sort(), 'kustomization lists every manifest')

  const sts = one('StatefulSet')
  const pod = sts.spec.template
  const labels = pod.metadata.labels as Record<string, string>
  const matches = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v)
  t.ok(matches(sts.spec.selector.matchLabels), 'StatefulSet selector matches its pods')
  const [container] = pod.spec.containers as Obj[]
  const ports = new Map((container.ports as Obj[]).map((p) => [p.name as string, p.containerPort as number]))
  t.same([...ports.values()].sort(), [1883, 7946, 8080, 8083, 8883], 'container ports')
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    t.equal(container[probe]?.httpGet?.path, '/healthz', `${probe} on /healthz`)
    t.equal(ports.get(container[probe].httpGet.port), 8080, `${probe} on the HTTP port`)
  }
  t.ok(container.livenessProbe.periodSeconds * container.livenessProbe.failureThreshold >= 30, 'liveness outlasts a Sentinel failover')
  t.ok(pod.spec.securityContext.runAsNonRoot, 'non-root pod')
  t.equal(pod.spec.securityContext.runAsUser, 1000, 'the image user (node, uid 1000)')
  const env = new Map((container.env as Obj[]).map((e) => [e.name as string, e]))
  t.equal(env.get('THINGMESH_NODE_ID')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name', 'node id is the pod name')
  t.ok(env.get('THINGMESH_ADMIN_PASSWORD')?.valueFrom?.secretKeyRef, 'admin password from a Secret')
  for (const k of env.keys()) t.ok(knownEnv.has(k), `env ${k} is a thingmesh option`)

  const cm = one('ConfigMap', container.envFrom[0].configMapRef.name)
  for (const k of Object.keys(cm.data)) t.ok(knownEnv.has(k), `ConfigMap ${k} is a thingmesh option`)
  t.match(cm.data.THINGMESH_REDIS, /^redis\+sentinel:\/\//, 'Redis through Sentinel')
  t.equal(Number(cm.data.THINGMESH_HTTP_PORT), ports.get('http'), 'HTTP port setting matches the container port')
  t.equal(Number(cm.data.THINGMESH_PORT), ports.get('mqtt'), 'MQTT port setting matches the container port')
  t.equal(Number(cm.data.THINGMESH_WS_PORT), ports.get('mqtt-ws'), 'WebSocket port setting matches the container port')
  t.equal(Number(cm.data.THINGMESH_LINK_PORT), ports.get('cluster-link'), 'cluster link port setting matches the container port')
  t.equal(env.get('THINGMESH_LINK_ADVERTISE')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP', 'each pod advertises its IP for the cluster links')

  const services = docs.filter((d) => d.kind === 'Service')
  t.equal(services.length, 2)
  for (const svc of services) {
    t.ok(matches(svc.spec.selector), `Service ${svc.metadata.name} selects the pods`)
    for (const p of svc.spec.ports as Obj[]) t.ok(ports.has(p.targetPort), `Service ${svc.metadata.name} port ${p.name} targets container port ${p.targetPort}`)
  }
  const headless = services.find((s) => s.spec.clusterIP === 'None')
  t.equal(headless?.metadata.name, sts.spec.serviceName, 'the headless Service governs the StatefulSet')
  const lb = services.find((s) => s.spec.clusterIP !== 'None')
  t.same((lb?.spec.ports as Obj[]).map((p) => p.targetPort).sort(), ['mqtt', 'mqtt-ws', 'mqtts'], 'client Service carries the three MQTT transports')

  const pdb = one('PodDisruptionBudget')
  t.ok(matches(pdb.spec.selector.matchLabels), 'PDB selector matches the pod labels')
  t.ok(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable !== undefined, 'PDB bounds disruptions')

  const hpa = one('HorizontalPodAutoscaler')
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: sts.metadata.name }, 'HPA scales the StatefulSet')
  t.ok(hpa.spec.minReplicas >= 3, 'never below three nodes')
  const custom = (hpa.spec.metrics as Obj[]).find((m) => m.type === 'Pods')
  t.match(read('broker/metrics.ts'), new RegExp(`name: '${custom?.pods.metric.name}'`), 'the custom metric is one the node exports')
  t.ok((hpa.spec.metrics as Obj[]).some((m) => m.type === 'Resource' && m.resource.name === 'cpu'), 'CPU fallback')
  const cap = Number(cm.data.THINGMESH_MAX_CONNECTIONS ?? (optionSpecs as Record<string, { default?: unknown }>).maxConnections?.default)
  if (Number.isFinite(cap) && cap > 0) {
    const target = Number(custom?.pods.target.averageValue)
    const n = hpa.spec.minReplicas as number
    t.ok(target * n / (n - 1) < cap, `${target} clients per pod fit on ${n - 1} pods under the ${cap} cap when one is lost`)
  } else {
    t.comment('no per-node connection cap configured: headroom check skipped')
  }
})
