import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildService, sharedResources, type Teardown, type TestSchema } from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
}

/**
 * The sessions app on its own schema (or `schema`, shared with another instance), Redis key prefix and NATS
 * namespace, torn down with the test. `env` overrides variables (e.g. a throwaway REDIS_URL or NATS_URL).
 */
export async function build(t: Teardown, env: Record<string, string> = {}, schema?: TestSchema): Promise<Built> {
  const shared = schema
    ? { ...(await sharedResources(t, { prefix: 's' })), schema }
    : await sharedResources(t, { prefix: 'sessions', migrations: migrationsDir })
  const built = await buildService(t, { app, configSchema: ConfigSchema, shared, env: { DATABASE_POOL_SIZE: '4', ...env } })
  return { app: built.app, config: built.config, schema: shared.schema }
}
