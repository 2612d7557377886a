import fp from 'fastify-plugin'
import type { Redis } from 'ioredis'
import { createRedis } from '@platform/kit'

// Not @fastify/rate-limit: its store answers one count per call and its hook ran on every proxied request;
// this one leases counts (one Redis call per many requests) and falls back to per-instance counting.
/**
 * A fixed window per key, atomic in Redis: every gateway replica counts into the same key. One call
 * takes `ARGV[2]` counts at once (a lease, see RateLimiter). The window starts with the first count and
 * the key expires with it.
 */
const LEASE_SCRIPT = `
local current = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`

declare module 'ioredis' {
  interface RedisCommander {
    gatewayRateLimitLease(key: string, windowMs: number, size: number): Promise<[number, number]>
  }
}

/** A lease is at most this many counts… */
const MAX_LEASE = 100
/** …and at most this fraction of what is left in the window, so a lease is 1 when the budget runs low. */
const LEASE_DIVISOR = 64

/** How many counts to take from Redis at once for a key with `max` allowed and `seen` already counted. */
export function leaseSize(max: number, seen: number): number {
  const remaining = max - seen
  return remaining <= LEASE_DIVISOR ? 1 : Math.min(MAX_LEASE, Math.floor(remaining / LEASE_DIVISOR))
}

interface Lease {
  /** The next global count this instance may hand out, and the last one it holds. */
  next: number
  last: number
  expiresAt: number
  /** The key's global count when Redis last answered. */
  seen: number
}

export interface Hit {
  current: number
  /** Milliseconds until the window resets. */
  ttl: number
  /** Counted by this instance alone because Redis could not be used. */
  local: boolean
}

interface Log {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

/**
 * Counts requests in Redis, shared by every replica, atomically (one Lua INCRBY per call).
 *
 * A busy key does not cost a Redis round trip per request: the instance leases a few counts at once
 * (at most 100, and at most 1/64 of what is left, so exactly one at a time near the limit) and hands
 * them out locally until they run out or the window ends. The limit is never exceeded; at worst a
 * client spread over N replicas is refused early by the counts other replicas still hold (≤ N/64 of
 * the budget that was left). Small limits, like the tests', are therefore exact.
 *
 * While Redis is down (or a command fails) it counts in this instance's memory instead: limits stay on,
 * never an error, and Redis is used again as soon as the client reconnects, without a restart.
 */
export class RateLimiter {
  private readonly local = new Map<string, { count: number; resetAt: number }>()
  private readonly leases = new Map<string, Lease>()
  /** Lease requests in flight per key: concurrent requests wait for it instead of leasing again. */
  private readonly leasing = new Map<string, Promise<void>>()
  private degraded = false

  constructor(
    private readonly redis: Redis,
    private readonly maxLocalKeys: number,
    private readonly log: Log
  ) {
    redis.defineCommand('gatewayRateLimitLease', { numberOfKeys: 1, lua: LEASE_SCRIPT })
  }

  /** Counts one request from a lease this instance holds, when it holds one for `key` (no I/O). */
  countHeld(key: string): Hit | null {
    return this.redis.status === 'ready' ? this.fromLease(key) : null
  }

  /** Counts one request for `key` (at most `max` per window of `windowMs`). Never rejects. */
  async count(key: string, windowMs: number, max: number): Promise<Hit> {
    if (this.redis.status === 'ready') {
      const held = this.fromLease(key)
      if (held) return held
      const inFlight = this.leasing.get(key)
      if (inFlight) {
        await inFlight
        const shared = this.fromLease(key)
        if (shared) return shared
      }
      try {
        const hit = await this.lease(key, windowMs, max)
        if (this.degraded) {
          this.degraded = false
          this.log.info({}, 'rate limits are shared through Redis again')
        }
        return hit
      } catch {
        // Redis failed mid-command: this request is counted locally.
      }
    }
    if (!this.degraded) {
      this.degraded = true
      this.log.warn({}, 'Redis unavailable: rate limits are counted per instance (X-Degradation-Mode: rate_limit_local)')
    }
    return this.countLocally(key, windowMs)
  }

  private fromLease(key: string): Hit | null {
    const lease = this.leases.get(key)
    if (lease === undefined || lease.next > lease.last) return null
    const now = Date.now()
    if (lease.expiresAt <= now) return null
    return { current: lease.next++, ttl: lease.expiresAt - now, local: false }
  }

  private async lease(key: string, windowMs: number, max: number): Promise<Hit> {
    const previous = this.leases.get(key)
    const size = leaseSize(max, previous && previous.expiresAt > Date.now() ? previous.seen : 0)
    let done!: () => void
    this.leasing.set(key, new Promise<void>((resolve) => (done = resolve)))
    try {
      const [global, ttl] = await this.redis.gatewayRateLimitLease(key, Math.ceil(windowMs), size)
      const first = global - size + 1
      if (!this.leases.has(key) && this.leases.size >= this.maxLocalKeys) this.evictOldest(this.leases)
      // The first count is this request's; the rest of the lease serves the next ones.
      this.leases.set(key, { next: first + 1, last: global, expiresAt: Date.now() + ttl, seen: global })
      return { current: first, ttl, local: false }
    } finally {
      this.leasing.delete(key)
      done()
    }
  }

  private evictOldest(map: Map<string, unknown>): void {
    const oldest = map.keys().next().value
    if (oldest !== undefined) map.delete(oldest)
  }

  private countLocally(key: string, windowMs: number): Hit {
    const now = Date.now()
    let entry = this.local.get(key)
    if (!entry || entry.resetAt <= now) {
      // Bounded memory: the oldest window goes first.
      if (!entry && this.local.size >= this.maxLocalKeys) this.evictOldest(this.local)
      entry = { count: 0, resetAt: now + windowMs }
      this.local.set(key, entry)
    }
    entry.count++
    return { current: entry.count, ttl: entry.resetAt - now, local: true }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    rateLimiter: RateLimiter
  }
}

export interface RateLimiterOptions {
  url: string
  keyPrefix: string
  commandTimeoutMs: number
  /** Consecutive command timeouts after which this connection counts as down (see the kit's createRedis). */
  failureThreshold: number
  localKeys: number
}

/**
 * The limiter has its own Redis connection from the kit's createRedis (fails fast, frozen Redis marked down). No
 * auto-pipelining: leases make Redis calls rare, and a pipeline per event-loop turn costs more than it saves.
 */
export const rateLimiterPlugin = fp<RateLimiterOptions>(
  async (fastify, opts) => {
    let lastError = ''
    const redis = createRedis(
      { url: opts.url, keyPrefix: opts.keyPrefix, commandTimeoutMs: opts.commandTimeoutMs, failureThreshold: opts.failureThreshold },
      (err) => {
        if (err.message !== lastError) fastify.log.warn({ err }, 'rate-limit redis error')
        lastError = err.message
      }
    )
    redis.on('ready', () => {
      lastError = ''
    })
    // Start shared: wait for the first connection (or its first failure, then start degraded).
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000)
      const settle = () => {
        clearTimeout(timer)
        redis.off('ready', settle).off('error', settle)
        resolve()
      }
      redis.once('ready', settle).once('error', settle)
    })
    fastify.decorate('rateLimiter', new RateLimiter(redis, opts.localKeys, fastify.log))
    fastify.addHook('onClose', async () => {
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect())
      else redis.disconnect()
    })
  },
  { name: 'rate-limiter' }
)
