import fp from 'fastify-plugin'
import { CleanupKinds, type CleanupHealthReply, type CleanupKind, type CleanupKindHealth } from '@platform/contracts'
import { overdue, type Schedule } from '../domain/schedule.js'

export interface CleanupHealthOptions {
  schedules: Schedule[]
  activeSessionsAlert: number
  /** Epoch ms for "two intervals without a success" [Date.now]; tests move it. */
  now?: () => number
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupHealth: { report(): Promise<CleanupHealthReply> }
  }
}

/**
 * The spec's health criteria: degraded when a schedule has not succeeded for two intervals (from the
 * shared run history, so every replica agrees) or when a kind has more active sessions than
 * ACTIVE_SESSIONS_ALERT. Feeds GET /health and two optional /ready checks.
 */
export const cleanupHealthPlugin = fp<CleanupHealthOptions>(
  async (fastify, opts) => {
    const clock = opts.now ?? Date.now
    const bootedAt = clock()
    const scheduled = new Map(opts.schedules.map((s) => [s.kind, s.intervalMs]))

    const report = async (): Promise<CleanupHealthReply> => {
      const reasons: string[] = []
      const [last, stats] = await Promise.all([
        fastify.runHistory.lastSuccess().catch(() => {
          reasons.push('the run history (Postgres) is unavailable')
          return null
        }),
        fastify.sessionStats.get()
      ])
      // Runs still happen without NATS, but their completion events wait in the outbox.
      if (!fastify.nats.connected) reasons.push('NATS is unreachable: run events wait in the outbox')
      const now = clock()
      const kinds = {} as Record<CleanupKind, CleanupKindHealth>
      for (const kind of CleanupKinds) {
        const every = scheduled.get(kind)
        const lastSuccess = last?.[kind] ?? null
        const late = every !== undefined && last !== null && overdue(now, lastSuccess, bootedAt, every)
        const active = stats[kind]?.active ?? null
        const over = active !== null && active > opts.activeSessionsAlert
        if (late) reasons.push(`${kind}: no successful cleanup for two intervals`)
        if (over) reasons.push(`${kind}: ${active} active sessions (alert above ${opts.activeSessionsAlert})`)
        kinds[kind] = {
          scheduled: every !== undefined,
          intervalSeconds: every !== undefined ? every / 1000 : null,
          lastSuccessAt: lastSuccess?.toISOString() ?? null,
          overdue: late,
          activeSessions: active,
          overThreshold: over
        }
      }
      return {
        status: reasons.length ? 'degraded' : 'healthy',
        timestamp: new Date(now).toISOString(),
        uptime: process.uptime(),
        activeSessionsAlert: opts.activeSessionsAlert,
        kinds,
        reasons
      }
    }

    fastify.decorate('cleanupHealth', { report })
    const anyKind = async (bad: (k: CleanupKindHealth) => boolean) => (Object.values((await report()).kinds).some(bad) ? 'down' : 'up')
    fastify.readiness.add('schedules', { required: false, check: () => anyKind((k) => k.overdue) })
    fastify.readiness.add('active_sessions', { required: false, check: () => anyKind((k) => k.overThreshold) })
  },
  { name: 'cleanup-health', dependencies: ['run-history', 'session-stats', 'platform-health', 'platform-nats'] }
)
