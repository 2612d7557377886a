import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { CleanupKinds, type CleanupKind } from '@platform/contracts'

export interface CleanupMetrics {
  /** One attempt ended: its duration, and for a success what the service removed and skipped. */
  attempt(kind: CleanupKind, status: 'succeeded' | 'retrying' | 'failed', seconds: number, removed: number, errors: number): void
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupMetrics: CleanupMetrics
  }
}

/** When each kind last succeeded, read from the shared run history at scrape time. */
function lastSuccessGauge(fastify: FastifyInstance, registers: Registry[]) {
  new Gauge({
    name: 'cleanup_last_success_timestamp_seconds',
    help: 'When each kind last finished a cleanup successfully (any replica; from the run history)',
    labelNames: ['kind'] as const,
    registers,
    collect: async function () {
      // Postgres down: /health and /ready already say so; this scrape just goes without the figure.
      const last = await fastify.runHistory.lastSuccess().catch(() => null)
      if (!last) return
      for (const kind of CleanupKinds) {
        const at = last[kind]
        if (at) this.set({ kind }, at.getTime() / 1000)
      }
    }
  })
}

/** Prometheus figures on the kit's registry (GET /metrics). */
export const cleanupMetricsPlugin = fp(
  async (fastify) => {
    const registers = [fastify.metrics]
    const duration = new Histogram({
      name: 'cleanup_run_duration_seconds',
      help: 'Duration of cleanup run attempts by kind and outcome',
      labelNames: ['kind', 'status'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers
    })
    const removed = new Counter({
      name: 'cleanup_removed_total',
      help: 'Sessions ended or removed by cleanup runs',
      labelNames: ['kind'] as const,
      registers
    })
    const rowErrors = new Counter({
      name: 'cleanup_row_errors_total',
      help: 'Rows or batches the owning services skipped and counted during cleanup runs',
      labelNames: ['kind'] as const,
      registers
    })
    const failures = new Counter({
      name: 'cleanup_failures_total',
      help: 'Cleanup runs that failed after their last attempt',
      labelNames: ['kind'] as const,
      registers
    })
    const runs = new Counter({
      name: 'cleanup_runs_total',
      help: 'Finished cleanup runs by kind and outcome',
      labelNames: ['kind', 'status'] as const,
      registers
    })
    lastSuccessGauge(fastify, registers)
    // Every kind shows up from the start, at zero.
    for (const kind of CleanupKinds) {
      removed.inc({ kind }, 0)
      failures.inc({ kind }, 0)
    }

    fastify.decorate('cleanupMetrics', {
      attempt(kind, status, seconds, n, errors) {
        duration.observe({ kind, status }, seconds)
        if (status === 'retrying') return
        runs.inc({ kind, status })
        if (status === 'failed') failures.inc({ kind })
        removed.inc({ kind }, n)
        rowErrors.inc({ kind }, errors)
      }
    })
  },
  { name: 'cleanup-metrics', dependencies: ['platform-metrics', 'run-history'] }
)
