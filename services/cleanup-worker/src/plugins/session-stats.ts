import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { Value } from 'typebox/value'
import { CleanupStatsReply, type CleanupKind, type CleanupKindStats } from '@platform/contracts'
import { byKind, ownerOf, Targets, type Target } from '../domain/kinds.js'
import { reasonOf, type ServiceClient } from './service-client.js'

export interface SessionStatsOptions {
  timeoutMs: number
  cacheMs: number
}

/** Each kind's figures from its owning service; null when the service could not give them. */
export type KindStats = Record<CleanupKind, CleanupKindStats | null>

export interface SessionStats {
  get(): Promise<KindStats>
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionStats: SessionStats
  }
}

export interface SessionStatsDeps extends SessionStatsOptions {
  services: ServiceClient
  log: Pick<FastifyBaseLogger, 'debug'>
  /** Epoch ms for the cache's age [Date.now]. */
  now?: () => number
}

/**
 * GET /internal/cleanup/stats of every owning service, asked once (no retries) and reused for a while;
 * concurrent callers share one round of requests. A service that is down, has an open breaker, or has
 * no such route yet (404) gives null figures.
 */
export function createSessionStats(deps: SessionStatsDeps): SessionStats {
  const now = deps.now ?? Date.now

  const ask = async (target: Target): Promise<CleanupStatsReply | null> => {
    if (deps.services.breakerState(target) === 'open') return null
    try {
      const reply = await deps.services.call(target, '/internal/cleanup/stats', { method: 'GET', timeoutMs: deps.timeoutMs, retries: 0 })
      return Value.Check(CleanupStatsReply, reply) ? reply : null
    } catch (err) {
      deps.log.debug({ target, reason: reasonOf(err) }, 'cleanup stats unavailable')
      return null
    }
  }

  const fetchAll = async (): Promise<KindStats> => {
    const replies = new Map(await Promise.all(Targets.map(async (t) => [t, await ask(t)] as const)))
    return byKind((k) => replies.get(ownerOf(k))?.[k] ?? null)
  }

  let cached: { at: number; value: KindStats } | null = null
  let inflight: Promise<KindStats> | null = null
  return {
    async get() {
      if (cached && now() - cached.at < deps.cacheMs) return cached.value
      inflight ??= fetchAll()
        .then((value) => {
          cached = { at: now(), value }
          return value
        })
        .finally(() => {
          inflight = null
        })
      return inflight
    }
  }
}

export const sessionStatsPlugin = fp<SessionStatsOptions>(
  async (fastify, opts) => {
    fastify.decorate('sessionStats', createSessionStats({ ...opts, services: fastify.services, log: fastify.log }))
  },
  { name: 'session-stats', dependencies: ['service-client'] }
)
