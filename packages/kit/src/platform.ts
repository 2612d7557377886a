import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler, registerAjvFormats } from '@fastify/type-provider-typebox'
import type { StreamKey } from '@platform/contracts'
import { UriTooLongError } from './errors.js'
import { errorHandlerPlugin } from './plugins/error-handler.js'
import { metricsPlugin, type MetricsOptions } from './plugins/metrics.js'
import { bodyDrainPlugin, drainOptions } from './plugins/body-drain.js'
import { healthPlugin, type HealthReport } from './plugins/health.js'
import { authOptions, authPlugin } from './plugins/auth.js'
import { dbPlugin } from './plugins/db.js'
import { redisPlugin } from './plugins/redis.js'
import { natsPlugin } from './plugins/nats.js'
import { outboxRelayPlugin } from './outbox/relay.js'
import type { ServiceConfig } from './server.js'

export interface PlatformOptions {
  config: ServiceConfig
  /** Each external client is opt-in: a service loads only what it uses. */
  postgres?: boolean
  /** autoPipelining batches the commands of one tick into one write (the gateway: one call per request). */
  redis?: boolean | { autoPipelining: boolean }
  nats?: { streams: StreamKey[] }
  outbox?: boolean
  /** A /health of the service's own in place of the default (dependency states). */
  health?: HealthReport
  metrics?: MetricsOptions
  /** Longest path and query accepted: 414 URI_TOO_LONG beyond. Unset: Node's header limit bounds it. */
  maxUrlLength?: number
  /** The body drain's bound when the largest body read is not BODY_LIMIT_BYTES. */
  drainBytes?: number
  /** The JWKS re-fetch clock (ms); tests move it. */
  now?: () => number
}

registerAjvFormats()

/**
 * The kit's plugins every service loads first, always in this order: error handler, metrics, body
 * drain, health, auth, then Postgres, Redis, NATS and the outbox relay.
 */
export const platformPlugins = fp<PlatformOptions>(
  async (fastify, { config, ...use }) => {
    // TypeBox checks bodies exactly as sent (no coercion: `{"title": 5}` is refused) and converts
    // only querystring, params and headers.
    fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
    const maxUrl = use.maxUrlLength
    fastify.addHook('onRequest', (request, reply, done) => {
      reply.header('x-request-id', request.id)
      done(maxUrl !== undefined && request.url.length > maxUrl ? new UriTooLongError(String(maxUrl)) : undefined)
    })
    await fastify.register(errorHandlerPlugin)
    await fastify.register(metricsPlugin, use.metrics ?? {})
    const drain = drainOptions(config, fastify.initialConfig.bodyLimit ?? config.BODY_LIMIT_BYTES)
    await fastify.register(bodyDrainPlugin, use.drainBytes === undefined ? drain : { ...drain, maxBytes: use.drainBytes })
    await fastify.register(healthPlugin, { custom: use.health })
    const auth = authOptions(config)
    if (use.now && auth.jwks) auth.jwks.now = use.now
    await fastify.register(authPlugin, auth)
    if (use.postgres) {
      await fastify.register(dbPlugin, {
        url: config.DATABASE_URL,
        schema: config.DATABASE_SCHEMA,
        poolSize: config.DATABASE_POOL_SIZE,
        timeoutMs: config.DATABASE_TIMEOUT_MS
      })
    }
    if (use.redis) {
      await fastify.register(redisPlugin, {
        url: config.REDIS_URL,
        keyPrefix: config.REDIS_KEY_PREFIX,
        commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
        failureThreshold: config.REDIS_FAILURE_THRESHOLD,
        ...(typeof use.redis === 'object' ? use.redis : {})
      })
    }
    if (use.nats) {
      await fastify.register(natsPlugin, {
        url: config.NATS_URL,
        namespace: config.NATS_NAMESPACE,
        name: config.SERVICE_NAME,
        streams: use.nats.streams
      })
    }
    if (use.outbox) {
      await fastify.register(outboxRelayPlugin, {
        pollMs: config.OUTBOX_POLL_MS,
        batchSize: config.OUTBOX_BATCH_SIZE,
        retentionSeconds: config.OUTBOX_RETENTION_SECONDS
      })
    }
  },
  { name: 'platform', fastify: '5.x' }
)
