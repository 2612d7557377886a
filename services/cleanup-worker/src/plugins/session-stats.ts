import fp from 'fastify-plugin'
import { Value } from 'typebox/value'
import { CleanupKinds, CleanupStatsReply, type CleanupKind, type CleanupKindStats } from '@platform/contracts'
import { ownerOf, Targets, type Target } from '../domain/kinds.js'

export interface SessionStatsOptions {
  timeoutMs: number
  cacheMs: number
}

/** Each kind's figures from its owning service; null when the service could not give them. */
export type KindStats = Record<CleanupKind, CleanupKindStats | null>

declare module 'fastify' {
  interface FastifyInstance {
    sessionStats: { get(): Promise<KindStats> }
  }
}

/**
 * GET /internal/cleanup/stats of every owning service, asked once (no retries) and reused for a while.
 * A service that is down, has an open breaker, or has no such route yet (404) gives null figures.
 */
export const sessionStatsPlugin = fp<SessionStatsOptions>(
  async (fastify, opts) => {
    const ask = async (target: Target): Promise<CleanupStatsReply | null> => {
      if (fastify.services.breakerState(target) === 'open') return null
      try {
        const reply = await fastify.services.call(target, '/internal/cleanup/stats', { method: 'GET', timeoutMs: opts.timeoutMs, retries: 0 })
        return Value.Check(CleanupStatsReply, reply) ? reply : null
      } catch (err) {
        fastify.log.debug({ target, reason: (err as Error).message }, 'cleanup stats unavailable')
        return null
      }
    }

    const fetchAll = async (): Promise<KindStats> => {
      const replies = new Map(await Promise.all(Targets.map(async (t) => [t, await ask(t)] as const)))
      return Object.fromEntries(CleanupKinds.map((k) => [k, replies.get(ownerOf(k))?.[k] ?? null])) as KindStats
    }

    let cached: { at: number; value: KindStats } | null = null
    let inflight: Promise<KindStats> | null = null
    fastify.decorate('sessionStats', {
      get: async () => {
        if (cached && Date.now() - cached.at < opts.cacheMs) return cached.value
        inflight ??= fetchAll()
          .then((value) => {
            cached = { at: Date.now(), value }
            return value
          })
          .finally(() => {
            inflight = null
          })
        return inflight
      }
    })
  },
  { name: 'session-stats', dependencies: ['service-client'] }
)
