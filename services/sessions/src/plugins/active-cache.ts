import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'

/** The outcome of a cache operation: `degraded` when Redis could not be used. */
export interface CacheResult<T> {
  value: T
  degraded: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    activeCache: ActiveSessionCache
  }
}

export const activeKey = (userId: string) => `session:active:user:${userId}`

/**
 * Cache of each user's active session id (Postgres is the source of truth).
 * - reads refresh the TTL (GETEX) in one round trip;
 * - a reader fills a miss with SET NX, so it can never overwrite a newer id written after a change;
 * - a write that fails marks the user dirty: their key is deleted as soon as Redis answers again, and
 *   until then this instance skips the cache for them, so no stale id survives an outage.
 */
export class ActiveSessionCache {
  private readonly dirty = new Set<string>()

  constructor(
    private readonly redis: Redis,
    private readonly ttlSeconds: number
  ) {
    redis.on('ready', () => void this.flushDirty())
  }

  /** While Redis is known to be down, skip it instead of paying for a refused command. */
  private get down(): boolean {
    return this.redis.status !== 'ready'
  }

  async get(userId: string): Promise<CacheResult<string | null>> {
    if (this.down) return { value: null, degraded: true }
    if (this.dirty.has(userId) && !(await this.clean(userId))) return { value: null, degraded: true }
    try {
      const id = await this.redis.getex(activeKey(userId), 'EX', this.ttlSeconds)
      return { value: id, degraded: false }
    } catch {
      return { value: null, degraded: true }
    }
  }

  /** Fills a miss after reading Postgres; never overwrites an id a writer has set meanwhile. */
  async fill(userId: string, id: string): Promise<boolean> {
    if (this.dirty.has(userId)) return false
    try {
      await this.redis.set(activeKey(userId), id, 'EX', this.ttlSeconds, 'NX')
      return true
    } catch {
      return false
    }
  }

  /** After a committed change: the new active id. Returns false (degraded) when Redis failed. */
  async set(userId: string, id: string): Promise<boolean> {
    if (this.down) {
      this.dirty.add(userId)
      return false
    }
    try {
      await this.redis.set(activeKey(userId), id, 'EX', this.ttlSeconds)
      this.dirty.delete(userId)
      return true
    } catch {
      this.dirty.add(userId)
      return false
    }
  }

  private async clean(userId: string): Promise<boolean> {
    try {
      await this.redis.del(activeKey(userId))
      this.dirty.delete(userId)
      return true
    } catch {
      return false
    }
  }

  private async flushDirty(): Promise<void> {
    for (const userId of [...this.dirty]) await this.clean(userId)
  }
}

export const activeCachePlugin = fp<{ ttlSeconds: number }>(
  async (fastify, opts) => {
    fastify.decorate('activeCache', new ActiveSessionCache(fastify.redis, opts.ttlSeconds))
  },
  { name: 'active-cache', dependencies: ['platform-redis'] }
)
