/** `pnpm db:migrate`: applies every service's migrations to its own schema. */
import { readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { loadConfig } from '../config.js'
import { ensureDatabase, migrate } from '../db/migrate.js'
import { Type } from 'typebox'
import { BaseConfigProperties } from '../config.js'

const root = resolve(import.meta.dirname, '../../../..')
const config = loadConfig(Type.Object({ DATABASE_URL: BaseConfigProperties.DATABASE_URL }))

/** services/task-sessions → schema task_sessions. */
export const schemaFor = (service: string) => service.replace(/-/g, '_')

await ensureDatabase(config.DATABASE_URL)
const services = (await readdir(join(root, 'services'))).sort()
for (const service of services) {
  const dir = join(root, 'services', service, 'prisma', 'migrations')
  const applied = await migrate({ url: config.DATABASE_URL, schema: schemaFor(service), migrationsDir: dir, log: console.log })
  console.log(`${service}: ${applied.length ? `${applied.length} migration(s) applied` : 'up to date'}`)
}
