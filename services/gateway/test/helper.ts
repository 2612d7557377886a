import type { FastifyInstance } from 'fastify'
import { buildService, freePort, sharedResources, type Teardown } from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export type Tap = Teardown

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
export async function build(t: Teardown, env: Record<string, string> = {}, opts: BuildOptions = {}): Promise<Built> {
  const dead = await deadUrl()
  const built = await buildService(t, {
    app,
    configSchema: ConfigSchema,
    shared: await sharedResources(t, { prefix: 'g' }),
    env: {
      SESSIONS_URLS: dead,
      TASK_SESSIONS_URLS: dead,
      CHAT_URLS: dead,
      CLEANUP_WORKER_URLS: dead,
      RETRY_DELAY: '0.005',
      UPSTREAM_TIMEOUT_MS: '2000',
      HEALTH_PROBE_TIMEOUT_MS: '300',
      UPSTREAM_CONNECTIONS: '16',
      ...env
    },
    options: { ...(opts.now ? { now: opts.now } : {}), ...(opts.sleep ? { sleep: opts.sleep } : {}) },
    listen: opts.listen ?? false
  })
  return { app: built.app, config: built.config, url: built.url }
}
