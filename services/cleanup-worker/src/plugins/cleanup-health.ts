import fp from 'fastify-plugin'
import { CleanupKinds, type CleanupHealthReply, type CleanupKindHealth } from '@platform/contracts'
import { byKind } from '../domain/kinds.js'
import { overdue, type Schedule } from '../domain/schedule.js'
import type { RunHistory } from './run-history.js'
import type { SessionStats } from './session-stats.js'

export interface CleanupHealthOptions {
  schedules: Schedule[]
  activeSessionsAlert: number
  /** Epoch ms for "two intervals without a success" [Date.now]; tests move it. */
  now?: () => number
}

export interface CleanupHealth {
  report(): Promise<CleanupHealthReply>
  /** 'down' when any kind is overdue (`overdue`) or over the alert (`overThreshold`): a /ready check. */
  check(bad: 'overdue' | 'overThreshold'): Promise<'up' | 'down'>
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupHealth: Pick<CleanupHealth, 'report'>
  }
}

export interface CleanupHealthDeps extends CleanupHealthOptions {
  runHistory: Pick<RunHistory, 'lastSuccess'>
  sessionStats: SessionStats
  /** Whether NATS is connected: runs go on without it, their events wait in the outbox. */
  natsConnected: () => boolean
}

/**
 * The spec's health criteria: degraded when a schedule has not succeeded for two intervals (from the
 * shared run history, so every replica agrees) or when a kind has more active sessions than
 * ACTIVE_SESSIONS_ALERT.
 */
export function createCleanupHealth(deps: CleanupHealthDeps): CleanupHealth {
  const clock = deps.now ?? Date.now
  const bootedAt = clock()
  const scheduled = new Map(deps.schedules.map((s) => [s.kind, s.intervalMs]))

  const report = async (): Promise<CleanupHealthReply> => {
    const reasons: string[] = []
    const [last, stats] = await Promise.all([
      deps.runHistory.lastSuccess().catch(() => {
        reasons.push('the run history (Postgres) is unavailable')
        return null
      }),
      deps.sessionStats.get()
    ])
    if (!deps.natsConnected()) reasons.push('NATS is unreachable: run events wait in the outbox')
    const now = clock()
    const kinds = byKind((kind): CleanupKindHealth => {
      const every = scheduled.get(kind)
      const lastSuccess = last?.[kind] ?? null
      const active = stats[kind]?.active ?? null
      return {
        scheduled: every !== undefined,
        intervalSeconds: every !== undefined ? every / 1000 : null,
        lastSuccessAt: lastSuccess?.toISOString() ?? null,
        overdue: every !== undefined && last !== null && overdue(now, lastSuccess, bootedAt, every),
        activeSessions: active,
        overThreshold: active !== null && active > deps.activeSessionsAlert
      }
    })
    for (const kind of CleanupKinds) {
      if (kinds[kind].overdue) reasons.push(`${kind}: no successful cleanup for two intervals`)
      if (kinds[kind].overThreshold) reasons.push(`${kind}: ${kinds[kind].activeSessions} active sessions (alert above ${deps.activeSessionsAlert})`)
    }
    const status = reasons.length ? 'degraded' : 'healthy'
    return { status, timestamp: new Date(now).toISOString(), uptime: process.uptime(), activeSessionsAlert: deps.activeSessionsAlert, kinds, reasons }
  }

  return {
    report,
    check: async (bad) => (Object.values((await report()).kinds).some((k) => k[bad]) ? 'down' : 'up')
  }
}

/** Feeds GET /health (through `fastify.cleanupHealth`) and two optional /ready checks. */
export const cleanupHealthPlugin = fp<CleanupHealthOptions>(
  async (fastify, opts) => {
    const health = createCleanupHealth({
      ...opts,
      runHistory: fastify.runHistory,
      sessionStats: fastify.sessionStats,
      natsConnected: () => fastify.nats.connected
    })
    fastify.decorate('cleanupHealth', health)
    fastify.readiness.add('schedules', { required: false, check: () => health.check('overdue') })
    fastify.readiness.add('active_sessions', { required: false, check: () => health.check('overThreshold') })
  },
  { name: 'cleanup-health', dependencies: ['run-history', 'session-stats', 'platform-health', 'platform-nats'] }
)
