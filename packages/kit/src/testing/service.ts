import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Static, TObject } from 'typebox'
import { loadConfig } from '../config.js'
import { fastifyOptions, type ServerOptionsInput } from '../server-options.js'
import { createTestSchema, deleteRedisKeys, uniqueName, type TestSchema } from './database.js'
import { deleteStreams } from './events.js'
import { TEST_JWT_SECRET } from './tokens.js'

export const TEST_REDIS_URL = 'redis://127.0.0.1:6379'
export const TEST_NATS_URL = 'nats://127.0.0.1:4222'

export interface Teardown {
  teardown(fn: () => unknown): void
}

/** What replicas of one deployment share in a test: its schema (a service with migrations), Redis key prefix and NATS namespace. */
export interface Shared {
  schema?: TestSchema
  /** REDIS_KEY_PREFIX (with a colon) and NATS_NAMESPACE. */
  ns: string
}

/** A schema (from `migrations`) and a namespace, removed when the test ends. */
export async function sharedResources(t: Teardown, opts: { prefix: string; migrations: string }): Promise<Required<Shared>>
export async function sharedResources(t: Teardown, opts: { prefix: string }): Promise<Shared>
export async function sharedResources(t: Teardown, opts: { prefix: string; migrations?: string }): Promise<Shared> {
  const schema = opts.migrations ? await createTestSchema(opts.migrations, opts.prefix) : undefined
  const ns = uniqueName(opts.prefix)
  t.teardown(async () => {
    await schema?.drop()
    // Best effort: a fault test may have pointed the app at a server of its own that is gone by now.
    await deleteRedisKeys(TEST_REDIS_URL, `${ns}:`).catch(() => undefined)
    await deleteStreams(TEST_NATS_URL, ns).catch(() => undefined)
  })
  return schema ? { schema, ns } : { ns }
}

export interface BuildServiceOptions<S extends TObject, O extends { config: Static<S> }, Sh extends Shared> {
  app: FastifyPluginAsync<O>
  configSchema: S
  /** Where its schema and namespace come from: a test's replicas pass the same. */
  shared: Sh
  /** The service's test defaults, then the test's own variables. */
  env?: Record<string, string>
  /** The app's options besides config: the clocks and waits tests inject. */
  options?: Omit<O, 'config'>
  /** Serve on 127.0.0.1, a free port (WebSockets, streamed bodies); otherwise use `app.inject`. */
  listen?: boolean
}

export interface BuiltService<C, Sh extends Shared> {
  app: FastifyInstance
  config: C
  shared: Sh
  /** The base URL when listening, '' otherwise. */
  url: string
  /** Closes the app now (the teardown then skips it): what SIGTERM does in server.ts. */
  close(): Promise<void>
}

/**
 * Builds a service's app as server.ts does, on the test's own schema, key prefix and namespace, and closes it
 * at teardown. The app is registered unencapsulated, so the test reaches its decorators.
 */
export async function buildService<S extends TObject, O extends { config: Static<S> }, Sh extends Shared>(
  t: Teardown,
  opts: BuildServiceOptions<S, O, Sh>
): Promise<BuiltService<Static<S>, Sh>> {
  const { schema, ns } = opts.shared
  // Every service's schema extends the kit's base one (config.ts), which the type of S does not carry.
  const config = loadConfig(opts.configSchema, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    JWT_SECRET: TEST_JWT_SECRET,
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    OUTBOX_POLL_MS: '50',
    ...(schema ? { DATABASE_URL: schema.url, DATABASE_SCHEMA: schema.schema, DATABASE_POOL_SIZE: '3', DATABASE_TIMEOUT_MS: '5000' } : {}),
    ...opts.env
  }) as Static<S> & ServerOptionsInput
  const fastify = Fastify(fastifyOptions(config))
  // The options object is the app's own type: config plus what the test injects.
  const appOptions = { ...opts.options, config } as O
  await fastify.register(fp(opts.app), appOptions)
  await fastify.ready()
  let closed: Promise<void> | null = null
  const close = () => (closed ??= fastify.close())
  t.teardown(close)
  const url = opts.listen ? await fastify.listen({ host: '127.0.0.1', port: 0 }) : ''
  return { app: fastify, config, shared: opts.shared, url, close }
}
