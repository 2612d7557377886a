import type { FastifyPluginAsync } from 'fastify'
import { platformPlugins } from '@platform/kit'
import type { Config } from './config.js'
import { prismaPlugin } from './plugins/prisma.js'
import { activeCachePlugin } from './plugins/active-cache.js'
import { namedSessionsPlugin } from './plugins/named-sessions.js'
import { namedSessionRoutes } from './routes/named-sessions.js'

/** The sessions service as a plugin: what server.ts listens with and what tests build. */
export const app: FastifyPluginAsync<{ config: Config }> = async (fastify, { config }) => {
  await fastify.register(platformPlugins, {
    config,
    postgres: true,
    redis: true,
    nats: { streams: ['sessions'] },
    outbox: true
  })
  await fastify.register(prismaPlugin)
  await fastify.register(activeCachePlugin, { ttlSeconds: config.ACTIVE_SESSION_CACHE_TTL_SECONDS })
  await fastify.register(namedSessionsPlugin, { source: `/${config.SERVICE_NAME}` })
  await fastify.register(namedSessionRoutes)
}
