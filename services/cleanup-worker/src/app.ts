import { CleanupHealthReply } from '@platform/contracts'
import { defineService, jwtSecret } from '@platform/kit'
import type { Config } from './config.js'
import { schedules } from './domain/schedule.js'
import { prismaPlugin } from './plugins/prisma.js'
import { serviceClientPlugin } from './plugins/service-client.js'
import { runHistoryPlugin } from './plugins/run-history.js'
import { sessionStatsPlugin } from './plugins/session-stats.js'
import { cleanupMetricsPlugin } from './plugins/cleanup-metrics.js'
import { cleanupRunnerPlugin } from './plugins/cleanup-runner.js'
import { cleanupQueuePlugin } from './plugins/cleanup-queue.js'
import { cleanupHealthPlugin } from './plugins/cleanup-health.js'
import { adminRoutes } from './routes/admin.js'

export interface CleanupAppOptions {
  config: Config
  /** Epoch ms for the health's overdue check [Date.now]; tests move it instead of waiting intervals. */
  now?: () => number
  /** Waits between retries of a service call; tests record the waits instead. */
  sleep?: (ms: number) => Promise<void>
}

/** The cleanup worker as a plugin: what server.ts listens with and what tests build. */
export const app = defineService<CleanupAppOptions>({
  platform: () => ({
    postgres: true,
    nats: { streams: ['cleanup'] },
    outbox: true,
    // Its /health reports the spec's criteria: overdue schedules, active sessions over the alert threshold.
    health: {
      response: { 200: CleanupHealthReply },
      report: async (app) => ({ statusCode: 200, body: await app.cleanupHealth.report() })
    }
  }),

  async plugins(fastify, { config, now, sleep }) {
    const planned = schedules(config)
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
      namedMaxAgeSeconds: namedMaxAgeSeconds(config),
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
  },

  async routes(fastify, { config }) {
    await fastify.register(adminRoutes, {
      schedules: schedules(config),
      namedMaxAgeSeconds: namedMaxAgeSeconds(config),
      runWaitMs: config.CLEANUP_RUN_WAIT_MS
    })
  }
})

function namedMaxAgeSeconds(config: Config): number | undefined {
  return config.NAMED_SESSION_MAX_AGE_DAYS !== undefined ? Math.round(config.NAMED_SESSION_MAX_AGE_DAYS * 86400) : undefined
}
