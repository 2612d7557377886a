import fp from 'fastify-plugin'
import { TypeBoxValidatorCompiler, registerAjvFormats } from '@fastify/type-provider-typebox'
import type { StreamKey } from '@platform/contracts'
import { errorHandlerPlugin } from './plugins/error-handler.js'
import { metricsPlugin } from './plugins/metrics.js'
import { bodyDrainPlugin, drainOptions } from './plugins/body-drain.js'
import { healthPlugin } from './plugins/health.js'
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
  redis?: boolean
  nats?: { streams: StreamKey[] }
  outbox?: boolean
}

registerAjvFormats()

/**
 * The external plugins every service loads first, always in this order: error handler, metrics, body
 * drain, health, auth, then Postgres, Redis, NATS and the outbox relay.
 */
export const platformPlugins = fp<PlatformOptions>(
  async (fastify, { config, ...use }) => {
    // TypeBox checks bodies exactly as sent (no coercion: `{"title": 5}` is refused) and converts
    // only querystring, params and headers.
    fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
    fastify.addHook('onRequest', async (request, reply) => {
      reply.header('x-request-id', request.id)
    })
    await fastify.register(errorHandlerPlugin)
    await fastify.register(metricsPlugin)
    await fastify.register(bodyDrainPlugin, drainOptions(config, fastify.initialConfig.bodyLimit ?? config.BODY_LIMIT_BYTES))
    await fastify.register(healthPlugin)
    await fastify.register(authPlugin, authOptions(config))
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
        failureThreshold: config.REDIS_FAILURE_THRESHOLD
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
