import fp from 'fastify-plugin'
import { loginStateKey, type LoginSessionState } from '@platform/contracts'

declare module 'fastify' {
  interface FastifyInstance {
    loginState: LoginStateStore
  }
}

/**
 * Writes each login session's hot state to Redis for the gateway's guard, which reads it in one
 * round trip per request. Only the fields this service owns are written (the guard keeps its own
 * counters in the same hash). A failed write marks the sid dirty; its key is deleted once Redis
 * answers again, so a guard never trusts a state that missed an ending.
 */
export class LoginStateStore {
  private readonly dirty = new Set<string>()

  constructor(
    private readonly redis: import('ioredis').Redis,
    private readonly ttlSeconds: number
  ) {
    redis.on('ready', () => void this.flushDirty())
  }

  async write(states: LoginSessionState[]): Promise<boolean> {
    if (states.length === 0) return true
    try {
      if (this.redis.status !== 'ready') throw new Error('redis is down')
      const multi = this.redis.multi()
      for (const s of states) {
        const key = loginStateKey(s.sid)
        multi.hset(key, {
          userId: s.userId,
          ua: s.userAgent,
          ip: s.ip,
          createdAt: s.createdAt,
          lastSeen: s.lastSeenAt,
          ended: s.endReason ?? ''
        })
        multi.expire(key, this.ttlSeconds)
      }
      await multi.exec()
      for (const s of states) this.dirty.delete(s.sid)
      return true
    } catch {
      for (const s of states) this.dirty.add(s.sid)
      return false
    }
  }

  private async flushDirty(): Promise<void> {
    const sids = [...this.dirty]
    if (sids.length === 0) return
    try {
      await this.redis.del(...sids.map((sid) => loginStateKey(sid)))
      for (const sid of sids) this.dirty.delete(sid)
    } catch {
      // still dirty: retried on the next reconnect or write
    }
  }
}

export const loginStatePlugin = fp<{ ttlSeconds: number }>(
  async (fastify, opts) => {
    fastify.decorate('loginState', new LoginStateStore(fastify.redis, opts.ttlSeconds))
  },
  { name: 'login-state', dependencies: ['platform-redis'] }
)
