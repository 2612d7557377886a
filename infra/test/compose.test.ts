import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parse } from 'yaml'
import { loadConfig } from '../../packages/kit/src/config.js'
import { jwtSecret } from '../../packages/kit/src/server.js'

type ConfigSchema = Parameters<typeof loadConfig>[0]

const root = join(import.meta.dirname, '..', '..')
const DOCKERFILE = 'infra/docker/Dockerfile'

/**
 * What each image can run (a healthcheck in exec form runs the program itself: no shell unless listed),
 * with the reason. Our services' image is the Dockerfile's, checked below against this entry.
 */
const IMAGE_TOOLS: Record<string, { tools: string[]; why: string }> = {
  'postgres:15': { tools: ['sh', 'pg_isready', 'psql'], why: 'Debian-based official image with the PostgreSQL client programs' },
  'redis:7': { tools: ['sh', 'redis-cli', 'redis-server'], why: 'Debian-based official image: redis-cli ships beside the server' },
  'nats:2.10': { tools: ['nats-server'], why: 'built FROM scratch: nats-server and nothing else (no shell, no wget or curl)' },
  'nats:2.10-alpine': { tools: ['sh', 'wget', 'nats-server'], why: 'Alpine: busybox sh and wget beside nats-server' },
  [DOCKERFILE]: { tools: ['sh', 'node', 'npm', 'pnpm'], why: 'node:20-bookworm-slim plus `npm i -g pnpm`; slim has no curl or wget' }
}

/** The infrastructure a service reaches by URL: compose service and container port. */
const INFRA: Record<string, { service: string; port: number }> = {
  DATABASE_URL: { service: 'postgres', port: 5432 },
  REDIS_URL: { service: 'redis', port: 6379 },
  NATS_URL: { service: 'nats', port: 4222 }
}

interface ComposeService {
  image?: string
  build?: { context: string; dockerfile?: string; args?: Record<string, string> }
  command?: string[]
  environment?: Record<string, string | null>
  ports?: Array<{ published: number | string; target: number }>
  depends_on?: Record<string, { condition: string }>
  healthcheck?: { test: string[] }
}

/** `docker-compose config` in a clean environment: the file as Compose resolves it, defaults filled in. */
function composeConfig(): Record<string, ComposeService> {
  const run = spawnSync('docker-compose', ['-f', join(root, 'docker-compose.yml'), 'config'], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }
  })
  if (run.error && 'code' in run.error && run.error.code === 'ENOENT') {
    throw new Error(
      "docker-compose is not installed: run `npm test`, whose setup (infra/local/setup.sh, as root) installs Debian's docker-compose package, or `apt-get install docker-compose`"
    )
  }
  if (run.status !== 0) throw new Error(`docker-compose config failed:\n${run.stderr}`)
  return (parse(run.stdout) as { services: Record<string, ComposeService> }).services
}

/** The image a service runs: its own, or ours when it is built from the Dockerfile. */
const imageOf = (svc: ComposeService) => (svc.build ? (svc.build.dockerfile ?? 'Dockerfile') : (svc.image ?? ''))

/** The program a healthcheck runs, and whether it needs a shell. */
function healthcheckProgram(test: string[]): { program: string; shell: boolean } {
  if (test[0] === 'CMD') return { program: test[1] ?? '', shell: false }
  if (test[0] === 'CMD-SHELL') return { program: (test[1] ?? '').trim().split(/\s+/)[0] ?? '', shell: true }
  return { program: test[0] ?? '', shell: true } // the string form runs in a shell too
}

const appServices = readdirSync(join(root, 'services'))
  .filter((s) => existsSync(join(root, 'services', s, 'src', 'server.ts')))
  .sort()
const services = composeConfig()

t.test('the stack is the infrastructure, the migrations and every service of services/', async (t) => {
  t.same(Object.keys(services).sort(), ['migrate', 'nats', 'postgres', 'redis', ...appServices].sort())
})

t.test('every healthcheck and command runs a program its image has', async (t) => {
  const dockerfile = readFileSync(join(root, DOCKERFILE), 'utf8')
  t.match(dockerfile, /^FROM node:20-bookworm-slim$/m, `${DOCKERFILE} is still the image IMAGE_TOOLS describes`)
  t.match(dockerfile, /^RUN npm i(nstall)? -g pnpm/m, 'and still installs pnpm')
  for (const [name, svc] of Object.entries(services)) {
    const image = imageOf(svc)
    const known = IMAGE_TOOLS[image]
    if (!known) {
      t.fail(`${name}: add ${image} to IMAGE_TOOLS with the programs it ships`)
      continue
    }
    if (svc.healthcheck) {
      const { program, shell } = healthcheckProgram(svc.healthcheck.test)
      t.ok(known.tools.includes(program), `${name}: ${program} is in ${image} (${known.why})`)
      if (shell) t.ok(known.tools.includes('sh'), `${name}: a shell-form healthcheck needs sh in ${image}`)
    } else {
      t.equal(name, 'migrate', `${name} has a healthcheck (only the one-shot migrate has none)`)
    }
    // A command starting with a flag is arguments for the image's entrypoint, not a program of its own.
    const program = svc.command?.[0]
    if (program && !program.startsWith('-')) t.ok(known.tools.includes(program), `${name}: its command ${program} is in ${image}`)
  }
})

t.test('postgres, redis and nats: healthchecks that ask the server, and what the services expect of them', async (t) => {
  const pg = services.postgres!
  const db = new URL(services.sessions?.environment?.DATABASE_URL ?? '')
  t.equal(pg.environment?.POSTGRES_PASSWORD, decodeURIComponent(db.password), 'the services log in with the password postgres gets')
  t.equal(pg.environment?.POSTGRES_DB, db.pathname.slice(1), 'to the database postgres creates')
  t.same(pg.healthcheck?.test.slice(0, 1), ['CMD-SHELL'])
  t.match(pg.healthcheck?.test[1], new RegExp(`^pg_isready -U ${db.username} -d ${db.pathname.slice(1)}$`))
  t.same(services.redis?.healthcheck?.test, ['CMD', 'redis-cli', 'ping'])

  const nats = services.nats!
  const args = nats.command ?? []
  t.ok(args.includes('-js') || args.includes('--jetstream'), 'JetStream is on: the services need it')
  const monitor = args[args.indexOf('-m') + 1]
  t.ok(args.includes('-m') && monitor, 'the monitoring port is on (-m): it serves /healthz')
  const probe = nats.healthcheck?.test.at(-1) ?? ''
  t.equal(new URL(probe).port, monitor, 'the healthcheck asks that port')
  t.equal(new URL(probe).pathname, '/healthz')
  for (const { service, port } of Object.values(INFRA)) {
    t.ok(
      services[service]?.ports?.some((p) => Number(p.target) === port),
      `${service} listens on ${port}`
    )
  }
})

t.test('migrate: one run of every migration, once postgres is healthy', async (t) => {
  const migrate = services.migrate!
  t.equal(migrate.build?.dockerfile, DOCKERFILE)
  t.same(migrate.command, ['pnpm', 'db:migrate'])
  t.same(Object.keys(migrate.environment ?? {}), ['DATABASE_URL'], 'the migrate command reads DATABASE_URL only')
  t.equal(new URL(migrate.environment?.DATABASE_URL ?? '').host, 'postgres:5432')
  t.same(migrate.depends_on, { postgres: { condition: 'service_healthy' } })
})

for (const name of appServices) {
  t.test(`${name}: its port, variables, dependencies and healthcheck match the code`, async (t) => {
    const svc = services[name]!
    const port = (JSON.parse(readFileSync(join(root, 'services', name, 'package.json'), 'utf8')) as { platform: { port: number } }).platform.port
    const mod = (await import(pathToFileURL(join(root, 'services', name, 'src', 'config.ts')).href)) as {
      ConfigSchema: ConfigSchema
      checkConfig?: (config: never) => void
    }
    const schema = mod.ConfigSchema
    t.equal((schema.properties.PORT as { default?: number }).default, port, 'the config default is package.json platform.port')
    t.equal(svc.build?.dockerfile, DOCKERFILE)
    t.equal(svc.build?.args?.SERVICE, name, 'the image runs this service')

    const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, v ?? '']))
    for (const key of Object.keys(env)) t.ok(key in schema.properties, `${key} is a variable ${name}'s config reads`)
    // The service's own start-up checks, on what Compose hands the container: required variables,
    // formats, production rules (JWT_SECRET) and the service's cross-checks.
    let config: Record<string, unknown> = {}
    t.doesNotThrow(() => {
      config = loadConfig(schema, env)
      jwtSecret(config as Parameters<typeof jwtSecret>[0])
      mod.checkConfig?.(config as never)
    }, `${name} starts with the compose environment`)
    t.equal(config.NODE_ENV, 'production')
    t.equal(config.PORT, port, 'it listens on its port')
    t.equal(config.HOST, '0.0.0.0', 'on every interface, so the published port reaches it')
    t.same(
      svc.ports?.map((p) => [Number(p.published), Number(p.target)]),
      [[port, port]],
      'published as itself'
    )

    const check = svc.healthcheck?.test ?? []
    t.equal(check[0], 'CMD')
    t.match(check.at(-1), `http://127.0.0.1:${port}/`, 'the healthcheck asks its own port')

    const deps = svc.depends_on ?? {}
    for (const [key, infra] of Object.entries(INFRA)) {
      if (!env[key]) continue
      const url = new URL(env[key])
      t.equal(url.hostname, infra.service, `${key} points at the ${infra.service} service`)
      t.equal(Number(url.port), infra.port, `${key} uses ${infra.service}'s port`)
      t.equal(deps[infra.service]?.condition, 'service_healthy', `${name} waits for a healthy ${infra.service}`)
    }
    // Their defaults (127.0.0.1) would be the container itself.
    t.ok(env.NATS_URL && env.REDIS_URL, `${name} is told where NATS and Redis are`)
    if (existsSync(join(root, 'services', name, 'prisma'))) {
      t.ok(env.DATABASE_URL, `${name} has a database: DATABASE_URL is set`)
      t.equal(deps.migrate?.condition, 'service_completed_successfully', `${name} waits for the migrations`)
    } else {
      t.notOk(env.DATABASE_URL, `${name} has no database: no DATABASE_URL`)
      t.notOk(deps.postgres || deps.migrate, `${name} waits for no database`)
    }

    // URLs of other services (the gateway's upstreams, the cleanup worker's owners): by service name and port.
    for (const [key, value] of Object.entries(env)) {
      if (!/_URLS?$/.test(key) || key in INFRA || !/^https?:/.test(value)) continue
      for (const raw of value.split(',')) {
        const url = new URL(raw.trim())
        const target = url.hostname
        t.ok(appServices.includes(target), `${key}: ${target} is a service of the stack`)
        const targetPort = (JSON.parse(readFileSync(join(root, 'services', target, 'package.json'), 'utf8')) as { platform: { port: number } })
          .platform.port
        t.equal(Number(url.port), targetPort, `${key}: ${target} listens on ${targetPort}`)
        if (key.endsWith('_URLS')) t.equal(deps[target]?.condition, 'service_healthy', `${name} starts once ${target} (an upstream) is healthy`)
      }
    }
  })
}
