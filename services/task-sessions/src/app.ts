import { defineService } from '@platform/kit'
import type { Config } from './config.js'
import { prismaPlugin } from './plugins/prisma.js'
import { taskStorePlugin } from './plugins/task-store.js'
import { taskSessionsPlugin } from './plugins/task-sessions.js'
import { taskEventsPlugin } from './plugins/task-events.js'
import { taskSessionRoutes } from './routes/task-sessions.js'
import { eventRoutes } from './routes/events.js'
import { internalRoutes } from './routes/internal.js'

/** The task-sessions service as a plugin: what server.ts listens with and what tests build. */
export const app = defineService<{ config: Config }>({
  platform: () => ({ postgres: true, nats: { streams: ['tasks', 'sessions', 'deadLetter'] }, outbox: true }),

  async plugins(fastify, { config }) {
    await fastify.register(prismaPlugin)
    await fastify.register(taskStorePlugin, {
      source: `/${config.SERVICE_NAME}`,
      finishedRetentionSeconds: Math.round(config.FINISHED_TASK_RETENTION_DAYS * 86_400),
      cleanupPauseRatio: config.TASK_SESSION_CLEANUP_PAUSE_RATIO
    })
    await fastify.register(taskSessionsPlugin)
    await fastify.register(taskEventsPlugin, { config })
  },

  async routes(fastify, { config }) {
    await fastify.register(taskSessionRoutes)
    await fastify.register(eventRoutes)
    await fastify.register(internalRoutes, {
      retentionDays: config.TASK_SESSION_RETENTION_DAYS,
      batchSize: config.TASK_SESSION_CLEANUP_BATCH_SIZE
    })
  }
})
