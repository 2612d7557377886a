import { defineService } from '@platform/kit'
import type { Config } from './config.js'
import { prismaPlugin } from './plugins/prisma.js'
import { activeCachePlugin } from './plugins/active-cache.js'
import { namedSessionsPlugin } from './plugins/named-sessions.js'
import { namedSessionRoutes } from './routes/named-sessions.js'
import { loginStatePlugin } from './plugins/login-state.js'
import { loginSessionsPlugin } from './plugins/login-sessions.js'
import { loginSessionRoutes } from './routes/login-sessions.js'
import { internalRoutes } from './routes/internal.js'
import { chatInteractionsPlugin } from './plugins/chat-interactions.js'

/** The sessions service as a plugin: what server.ts listens with and what tests build. */
export const app = defineService<{ config: Config }>({
  platform: () => ({ postgres: true, redis: true, nats: { streams: ['sessions'] }, outbox: true }),

  async plugins(fastify, { config }) {
    await fastify.register(prismaPlugin)
    await fastify.register(activeCachePlugin, { ttlSeconds: config.ACTIVE_SESSION_CACHE_TTL_SECONDS })
    await fastify.register(namedSessionsPlugin, { source: `/${config.SERVICE_NAME}` })
    await fastify.register(loginStatePlugin, { ttlSeconds: config.SESSION_INACTIVITY_TIMEOUT + 60 })
    await fastify.register(loginSessionsPlugin, {
      source: `/${config.SERVICE_NAME}`,
      maxConcurrent: config.MAX_CONCURRENT_SESSIONS,
      overflow: config.LOGIN_SESSION_OVERFLOW,
      inactivitySeconds: config.SESSION_INACTIVITY_TIMEOUT,
      maxAgeSeconds: config.LOGIN_SESSION_MAX_AGE,
      orphanAgeSeconds: config.LOGIN_ORPHAN_AGE_SECONDS
    })
    await fastify.register(chatInteractionsPlugin, { durable: config.CHAT_INTERACTIONS_DURABLE })
  },

  async routes(fastify, { config }) {
    await fastify.register(namedSessionRoutes)
    await fastify.register(loginSessionRoutes)
    await fastify.register(internalRoutes, {
      cleanupBatchSize: config.SESSION_CLEANUP_BATCH_SIZE,
      namedSessionMaxAgeDays: config.NAMED_SESSION_MAX_AGE_DAYS
    })
  }
})
