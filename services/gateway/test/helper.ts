import Fastify, { type FastifyInstance } from 'fastify'
import { fastifyOptions, loadConfig } from '@platform/kit'
import { TEST_JWT_SECRET, deleteRedisKeys, freePort, uniqueName } from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export interface Tap {
  teardown(fn: () => unknown): void
}

export interface Built {
  app: FastifyInstance
  config: Config
  /** Base URL once `listen` is true. */
  url: string
}

/** A URL nothing listens on: the default for every upstream a test does not start. */
export async function deadUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`
}

export interface BuildOptions {
  /** Serve on a port (WebSockets, streamed bodies); otherwise use `app.inject`. */
  listen?: boolean
  /** The gateway's clock (see GatewayOptions.now): a test moves it instead of sleeping. */
  now?: () => number
  /** The forwarder's wait before a retry: a test records the waits instead. */
  sleep?: (ms: number) => Promise<unknown>
}

/**
 * The gateway on its own Redis key prefix and NATS namespace, torn down with the test. Every upstream
 * points at a dead port unless `env` says otherwise; timeouts and backoff are short.
 * `listen: true` serves it on a port (WebSockets, streamed bodies); otherwise use `app.inject`.
 */
export async function build(t: Tap, env: Record<string, string> = {}, opts: BuildOptions = {}): Promise<Built> {
  const ns = uniqueName('g')
  const dead = await deadUrl()
  const config = loadConfig(ConfigSchema, {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET,
    SESSIONS_URLS: dead,
    TASK_SESSIONS_URLS: dead,
    CHAT_URLS: dead,
    CLEANUP_WORKER_URLS: dead,
    RETRY_DELAY: '0.005',
    UPSTREAM_TIMEOUT_MS: '2000',
    HEALTH_PROBE_TIMEOUT_MS: '300',
    UPSTREAM_CONNECTIONS: '16',
    ...env
  })
  const fastify = Fastify(fastifyOptions(config))
  await fastify.register(app, { config, ...(opts.now ? { now: opts.now } : {}), ...(opts.sleep ? { sleep: opts.sleep } : {}) })
  await fastify.ready()
  let url = ''
  if (opts.listen) url = await fastify.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await fastify.close()
    await deleteRedisKeys(config.REDIS_URL, config.REDIS_KEY_PREFIX).catch(() => {})
  })
  return { app: fastify, config, url }
}
