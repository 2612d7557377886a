import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import { waitUntil } from '../wait.js'

export interface RedisOptions {
  url: string
  keyPrefix: string
  commandTimeoutMs: number
  /** Batch the commands of one event-loop tick into one write: for hot paths with many concurrent requests. */
  autoPipelining?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Commands fail at once while Redis is down (no offline queue): callers degrade instead of waiting. */
    redis: Redis
  }
}

export function createRedis(opts: RedisOptions, onError: (err: Error) => void = () => {}): Redis {
  const redis = new Redis(opts.url, {
    keyPrefix: opts.keyPrefix,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    enableAutoPipelining: opts.autoPipelining ?? false,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000)
  })
  redis.on('error', onError)
  return redis
}

export const redisPlugin = fp<RedisOptions>(
  async (fastify, opts) => {
    let lastError = ''
    const redis = createRedis(opts, (err) => {
      // One line per distinct failure, not one per reconnect attempt.
      if (err.message !== lastError) fastify.log.warn({ err }, 'redis error')
      lastError = err.message
    })
    redis.on('ready', () => {
      if (lastError) fastify.log.info('redis reconnected')
      lastError = ''
    })
    fastify.decorate('redis', redis)
    // Start ready when Redis is there, but never wait long: the service works without it.
    await waitUntil(new Promise((resolve) => redis.once('ready', resolve)), 2000)
    fastify.readiness.add('redis', { required: false, check: () => (redis.status === 'ready' ? 'up' : 'down') })
    fastify.addHook('onClose', async () => {
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
    })
  },
  { name: 'platform-redis', fastify: '5.x', dependencies: ['platform-health'] }
)
