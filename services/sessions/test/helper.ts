import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { fastifyOptions, loadConfig } from '@platform/kit'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  uniqueName,
  type TestSchema
} from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

interface Tap {
  teardown(fn: () => unknown): void
}

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
}

/**
 * The sessions app on its own schema, Redis key prefix and NATS namespace, torn down with the test.
 * `env` overrides variables (e.g. a throwaway REDIS_URL or NATS_URL).
 */
export async function build(t: Tap, env: Record<string, string> = {}, schema?: TestSchema): Promise<Built> {
  const db = schema ?? (await createTestSchema(migrationsDir, 'sessions'))
  const ns = uniqueName('s')
  const config = loadConfig(ConfigSchema, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: db.url,
    DATABASE_SCHEMA: db.schema,
    DATABASE_POOL_SIZE: '4',
    DATABASE_TIMEOUT_MS: '5000',
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET,
    OUTBOX_POLL_MS: '50',
    ...env
  })
  const fastify = Fastify(fastifyOptions(config))
  // fp: the app's decorators (outbox, prisma...) stay visible to the test.
  await fastify.register(fp(app), { config })
  await fastify.ready()
  t.teardown(async () => {
    await fastify.close()
    if (!schema) await db.drop()
    await deleteRedisKeys(config.REDIS_URL, config.REDIS_KEY_PREFIX).catch(() => {})
    await deleteStreams(config.NATS_URL, config.NATS_NAMESPACE).catch(() => {})
  })
  return { app: fastify, config, schema: db }
}
