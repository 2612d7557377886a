import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
  CleanupKinds,
  CleanupMetricsReply,
  CleanupRun,
  CleanupRunList,
  CleanupRunListQuery,
  CleanupRunParams,
  ErrorReply,
  StartCleanupRunBody,
  type CleanupKind,
  type CleanupKindMetrics,
  type CleanupRun as CleanupRunDto
} from '@platform/contracts'
import { checkRunRequest, isCleanupKind } from '../domain/kinds.js'
import { CleanupRunNotFoundError, QueueUnavailableError, UnknownCleanupKindError } from '../domain/errors.js'
import type { Schedule } from '../domain/schedule.js'

export interface AdminRouteOptions {
  schedules: Schedule[]
  namedMaxAgeSeconds: number | undefined
  runWaitMs: number
}

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const QUEUE_RETRY_AFTER_SECONDS = 5
const finished = (run: CleanupRunDto) => run.status === 'succeeded' || run.status === 'failed'

/** The admin API (admin role), reached through the gateway under /api/v1/admin/cleanup. */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminRouteOptions> = async (fastify, opts) => {
  const { runHistory } = fastify
  // On request, before validation: a caller without the admin role learns nothing about the API.
  fastify.addHook('onRequest', fastify.requireRole('admin'))
  let closing = false
  fastify.addHook('preClose', async () => {
    closing = true
  })

  /** Polls the shared history: the run may be taken by any replica. */
  const waitFor = async (id: string, ms: number): Promise<CleanupRunDto | null> => {
    const deadline = Date.now() + ms
    for (;;) {
      const run = await runHistory.get(id)
      if (!run || finished(run) || Date.now() >= deadline || closing) return run
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - Date.now()))))
    }
  }

  fastify.get(
    '/api/v1/admin/cleanup/runs',
    { schema: { tags: ['cleanup'], summary: 'Run history, newest first', querystring: CleanupRunListQuery, response: { 200: CleanupRunList, ...errors } } },
    async (request) => {
      const { kind, status, trigger, limit = 20, cursor } = request.query
      if (kind !== undefined && !isCleanupKind(kind)) throw new UnknownCleanupKindError(kind)
      return runHistory.list({ kind, status, trigger, limit, cursor })
    }
  )

  fastify.get(
    '/api/v1/admin/cleanup/runs/:id',
    { schema: { tags: ['cleanup'], summary: 'One run', params: CleanupRunParams, response: { 200: CleanupRun, 404: ErrorReply, ...errors } } },
    async (request) => {
      const run = await runHistory.get(request.params.id)
      if (!run) throw new CleanupRunNotFoundError(request.params.id)
      return run
    }
  )

  // 200 with the finished run when it ends within CLEANUP_RUN_WAIT_MS, else 202 with it as it stands
  // (queued or running) and a Location to poll.
  fastify.post(
    '/api/v1/admin/cleanup/run',
    {
      schema: {
        tags: ['cleanup'],
        summary: 'Run one kind now through the queue',
        body: StartCleanupRunBody,
        response: { 200: CleanupRun, 202: CleanupRun, ...errors }
      }
    },
    async (request, reply) => {
      const { olderThanSeconds } = request.body
      const kind = checkRunRequest(request.body.kind, olderThanSeconds, opts.namedMaxAgeSeconds)
      const id = randomUUID()
      const queued = await runHistory.queue({ id, kind, olderThanSeconds })
      try {
        await fastify.cleanupQueue.enqueue(id, { kind, trigger: 'manual', runId: id, ...(olderThanSeconds !== undefined ? { olderThanSeconds } : {}) })
      } catch (err) {
        request.log.warn({ err, kind }, 'could not queue a cleanup run')
        await runHistory.discard(id).catch(() => {})
        throw Object.assign(new QueueUnavailableError(), { retryAfter: QUEUE_RETRY_AFTER_SECONDS })
      }
      request.log.info({ runId: id, kind, olderThanSeconds }, 'cleanup run queued by an admin')
      const run = (await waitFor(id, opts.runWaitMs)) ?? queued
      if (finished(run)) return reply.code(200).send(run)
      return reply.code(202).header('location', `/api/v1/admin/cleanup/runs/${id}`).send(run)
    }
  )

  fastify.get(
    '/api/v1/admin/cleanup/metrics',
    { schema: { tags: ['cleanup'], summary: 'Session metrics per kind', response: { 200: CleanupMetricsReply, ...errors } } },
    async () => {
      const [summary, stats] = await Promise.all([runHistory.summary(), fastify.sessionStats.get()])
      const scheduled = new Map(opts.schedules.map((s) => [s.kind, s.intervalMs]))
      const kinds = {} as Record<CleanupKind, CleanupKindMetrics>
      for (const kind of CleanupKinds) {
        const s = stats[kind]
        const every = scheduled.get(kind)
        kinds[kind] = {
          active_sessions: s?.active ?? null,
          expired_sessions: s?.expired ?? null,
          cleanup_runs: summary[kind].runs,
          failed_runs: summary[kind].failed,
          last_cleanup_time: summary[kind].lastSuccessAt?.toISOString() ?? null,
          average_session_duration: s?.averageSessionDurationSeconds ?? null,
          scheduled: every !== undefined,
          interval_seconds: every !== undefined ? every / 1000 : null
        }
      }
      return {
        kinds,
        memory_usage_mb: Math.round((process.memoryUsage().rss / 1048576) * 10) / 10,
        timestamp: new Date().toISOString()
      }
    }
  )
}
