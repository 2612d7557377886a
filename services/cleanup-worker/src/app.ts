import type { FastifyPluginAsync } from 'fastify'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { authOptions, authPlugin, bodyDrainPlugin, dbPlugin, drainOptions, errorHandlerPlugin, jwtSecret, metricsPlugin, natsPlugin, outboxRelayPlugin } from '@platform/kit'
import type { Config } from './config.js'
import { schedules } from './domain/schedule.js'
import { readinessPlugin } from './plugins/readiness.js'
import { prismaPlugin } from './plugins/prisma.js'
import { serviceClientPlugin } from './plugins/service-client.js'
import { runHistoryPlugin } from './plugins/run-history.js'
import { sessionStatsPlugin } from './plugins/session-stats.js'
import { cleanupMetricsPlugin } from './plugins/cleanup-metrics.js'
import { cleanupRunnerPlugin } from './plugins/cleanup-runner.js'
import { cleanupQueuePlugin } from './plugins/cleanup-queue.js'
import { cleanupHealthPlugin } from './plugins/cleanup-health.js'
import { healthRoutes } from './routes/health.js'
import { adminRoutes } from './routes/admin.js'

export interface CleanupAppOptions {
  config: Config
  /** Epoch ms for the health's overdue check [Date.now]; tests move it instead of waiting intervals. */
  now?: () => number
  /** Waits between retries of a service call; tests record the waits instead. */
  sleep?: (ms: number) => Promise<void>
}

/**
 * The cleanup worker as a plugin: what server.ts listens with and what tests build. It loads the kit's
 * plugins one by one rather than platformPlugins, because its /health (the spec's criteria) replaces the
 * kit's; the order is otherwise the same: error handler, metrics, body drain, health, auth, Postgres, NATS, outbox.
 */
export const app: FastifyPluginAsync<CleanupAppOptions> = async (fastify, { config, now, sleep }) => {
  fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  await fastify.register(errorHandlerPlugin)
  await fastify.register(metricsPlugin)
  await fastify.register(bodyDrainPlugin, drainOptions(config, config.BODY_LIMIT_BYTES))
  await fastify.register(readinessPlugin)
  await fastify.register(authPlugin, authOptions(config))
  await fastify.register(dbPlugin, {
    url: config.DATABASE_URL,
    schema: config.DATABASE_SCHEMA,
    poolSize: config.DATABASE_POOL_SIZE,
    timeoutMs: config.DATABASE_TIMEOUT_MS
  })
  await fastify.register(natsPlugin, { url: config.NATS_URL, namespace: config.NATS_NAMESPACE, name: config.SERVICE_NAME, streams: ['cleanup'] })
  await fastify.register(outboxRelayPlugin, {
    pollMs: config.OUTBOX_POLL_MS,
    batchSize: config.OUTBOX_BATCH_SIZE,
    retentionSeconds: config.OUTBOX_RETENTION_SECONDS
  })

  const planned = schedules(config)
  const namedMaxAgeSeconds = config.NAMED_SESSION_MAX_AGE_DAYS !== undefined ? Math.round(config.NAMED_SESSION_MAX_AGE_DAYS * 86400) : undefined
  await fastify.register(prismaPlugin)
  await fastify.register(serviceClientPlugin, {
    urls: { sessions: config.SESSIONS_URL, 'task-sessions': config.TASK_SESSIONS_URL, chat: config.CHAT_URL },
    signing: { secret: jwtSecret(config), issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE },
    tokenTtlSeconds: config.SERVICE_TOKEN_TTL_SECONDS,
    timeoutMs: config.CLEANUP_CALL_TIMEOUT_MS,
    retries: config.CLEANUP_CALL_RETRIES,
    retryBaseMs: config.CLEANUP_RETRY_BASE_MS,
    retryMaxMs: config.CLEANUP_RETRY_MAX_MS,
    breaker: {
      errorPercentage: config.CLEANUP_BREAKER_ERROR_PERCENTAGE,
      minVolume: config.CLEANUP_BREAKER_MIN_VOLUME,
      resetMs: config.CLEANUP_BREAKER_RESET_MS
    },
    ...(sleep ? { sleep } : {})
  })
  await fastify.register(runHistoryPlugin, { source: `/${config.SERVICE_NAME}` })
  await fastify.register(sessionStatsPlugin, { timeoutMs: config.CLEANUP_STATS_TIMEOUT_MS, cacheMs: config.CLEANUP_STATS_CACHE_MS })
  await fastify.register(cleanupMetricsPlugin)
  await fastify.register(cleanupRunnerPlugin, {
    batchSize: config.SESSION_CLEANUP_BATCH_SIZE,
    namedMaxAgeSeconds,
    historyRetentionDays: config.CLEANUP_HISTORY_RETENTION_DAYS
  })
  await fastify.register(cleanupQueuePlugin, {
    redisUrl: config.REDIS_URL,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    failureThreshold: config.REDIS_FAILURE_THRESHOLD,
    prefix: `${config.REDIS_KEY_PREFIX}${config.CLEANUP_QUEUE_PREFIX}`,
    name: config.CLEANUP_QUEUE_NAME,
    schedules: planned,
    concurrency: config.CLEANUP_CONCURRENCY,
    attempts: config.CLEANUP_JOB_ATTEMPTS,
    backoffMs: config.CLEANUP_JOB_BACKOFF_MS,
    lockMs: config.CLEANUP_JOB_LOCK_MS,
    stalledIntervalMs: config.CLEANUP_STALLED_INTERVAL_MS
  })
  await fastify.register(cleanupHealthPlugin, { schedules: planned, activeSessionsAlert: config.ACTIVE_SESSIONS_ALERT, ...(now ? { now } : {}) })
  await fastify.register(healthRoutes)
  await fastify.register(adminRoutes, { schedules: planned, namedMaxAgeSeconds, runWaitMs: config.CLEANUP_RUN_WAIT_MS })
}
