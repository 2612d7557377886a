import fp from 'fastify-plugin'
import type { ClientContext, Redis, Result } from 'ioredis'
import { takeFromWindow, type RateDecision, type RateWindow } from '../domain/rate-window.js'

declare module 'ioredis' {
  interface RedisCommander<Context extends ClientContext = { type: 'default' }> {
    /** INCR with a window set on the first hit: [count, pttl]. */
    chatRateTake(key: string, windowMs: number): Result<[number, number], Context>
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    chatRateLimiter: ChatRateLimiter
  }
}

const TAKE = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}`

/** The outcome of a check and whether it came from this instance's memory because Redis failed. */
export interface RateOutcome extends RateDecision {
  degraded: boolean
}

interface Waiting {
  userId: string
  resolve: (outcome: RateOutcome) => void
}

/** A pipeline reply of chatRateTake: [count, pttl]. */
const isCountAndTtl = (v: unknown): v is [number, number] => Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number'

/**
 * Messages per user per window, shared by every chat instance through one Redis counter per user;
 * while Redis is down each instance counts on its own (docs/architecture.md, Failure behaviour).
 * Checks made in the same turn of the event loop go to Redis as one pipeline (one write, one read).
 */
export class ChatRateLimiter {
  private readonly local = new Map<string, RateWindow>()
  private waiting: Waiting[] = []

  constructor(
    private readonly redis: Redis,
    readonly limit: number,
    readonly windowMs: number
  ) {
    redis.defineCommand('chatRateTake', { numberOfKeys: 1, lua: TAKE })
  }

  take(userId: string): Promise<RateOutcome> {
    return new Promise((resolve) => {
      if (this.waiting.push({ userId, resolve }) === 1) setImmediate(() => void this.flush())
    })
  }

  private async flush(): Promise<void> {
    const batch = this.waiting
    this.waiting = []
    let results: Array<[Error | null, unknown]> | null = null
    try {
      const pipeline = this.redis.pipeline()
      for (const w of batch) pipeline.chatRateTake(`chat:rate:user:${w.userId}`, this.windowMs)
      results = await pipeline.exec()
    } catch {
      // Redis is away: every check of the batch counts in this instance's memory (degraded) below.
      results = null
    }
    const now = Date.now()
    batch.forEach((w, i) => {
      const [err, value] = results?.[i] ?? [new Error('no reply'), null]
      if (err || !isCountAndTtl(value)) return w.resolve({ ...this.takeLocal(w.userId, now), degraded: true })
      const [count, ttl] = value
      w.resolve(
        count <= this.limit
          ? { allowed: true, retryAfterMs: 0, degraded: false }
          : { allowed: false, retryAfterMs: Math.max(1, ttl), degraded: false }
      )
    })
  }

  /** A window kept by the caller (anonymous connections count per connection, on the connection). */
  takeOwn(w: RateWindow, now = Date.now()): RateDecision {
    return takeFromWindow(w, this.limit, this.windowMs, now)
  }

  private takeLocal(key: string, now: number): RateDecision {
    if (this.local.size > 10_000) {
      for (const [k, w] of this.local) if (w.resetAt <= now) this.local.delete(k)
    }
    let w = this.local.get(key)
    if (!w) {
      w = { count: 0, resetAt: 0 }
      this.local.set(key, w)
    }
    return takeFromWindow(w, this.limit, this.windowMs, now)
  }
}

export const rateLimiterPlugin = fp<{ limit: number; windowMs: number }>(
  async (fastify, opts) => {
    fastify.decorate('chatRateLimiter', new ChatRateLimiter(fastify.redis, opts.limit, opts.windowMs))
  },
  { name: 'chat-rate-limiter', dependencies: ['platform-redis'] }
)
