import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'

const root = join(import.meta.dirname, '..', '..')
const hasCompose = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0

t.test('docker-compose.yml parses and runs every service with its dependencies', { skip: !hasCompose && 'docker-compose is not installed' }, async (t) => {
  // docker-compose v1 (Debian's) prints the resolved file as YAML; a parse error fails the command.
  const config = parse(
    execFileSync('docker-compose', ['-f', join(root, 'docker-compose.yml'), 'config'], {
      encoding: 'utf8',
      env: { ...process.env, JWT_SECRET: 'x'.repeat(32) }
    })
  )
  const services = readdirSync(join(root, 'services')).filter((s) => existsSync(join(root, 'services', s, 'src', 'server.ts')))
  for (const name of ['postgres', 'redis', 'nats', 'migrate', ...services]) t.ok(config.services[name], `${name} is in the stack`)
  for (const name of services) {
    const svc = config.services[name]
    t.ok(svc.healthcheck, `${name} has a healthcheck`)
    t.equal(svc.depends_on.redis.condition, 'service_healthy', `${name} waits for a healthy redis`)
    // Services with a database wait for it and for the migrations; the gateway has none.
    if (existsSync(join(root, 'services', name, 'prisma'))) {
      t.equal(svc.depends_on.postgres.condition, 'service_healthy', `${name} waits for a healthy postgres`)
      t.equal(svc.depends_on.migrate.condition, 'service_completed_successfully', `${name} waits for migrations`)
    }
  }
  for (const name of ['postgres', 'redis', 'nats']) t.ok(config.services[name].healthcheck, `${name} has a healthcheck`)
})
