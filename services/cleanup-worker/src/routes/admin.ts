import { randomUUID } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import {
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
import { withRetryAfter } from '@platform/kit'
import { byKind, checkRunRequest, isCleanupKind } from '../domain/kinds.js'
import { CleanupRunNotFoundError, QueueUnavailableError, UnknownCleanupKindError } from '../domain/errors.js'
import type { Schedule } from '../domain/schedule.js'
import type { KindSummary, RunHistory } from '../plugins/run-history.js'
import type { KindStats } from '../plugins/session-stats.js'

export interface AdminRouteOptions {
  schedules: Schedule[]
  namedMaxAgeSeconds: number | undefined
  runWaitMs: number
}

/** The instance the admin routes are declared on: TypeBox-typed. */
type Admin = Parameters<FastifyPluginAsyncTypebox>[0]

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const QUEUE_RETRY_AFTER_SECONDS = 5
const RUN_POLL_MS = 100
const finished = (run: CleanupRunDto) => run.status === 'succeeded' || run.status === 'failed'

/** The admin API (admin role), reached through the gateway under /api/v1/admin/cleanup. */
export const adminRoutes: FastifyPluginAsyncTypebox<AdminRouteOptions> = async (fastify, opts) => {
  // On request, before validation: a caller without the admin role learns nothing about the API.
  fastify.addHook('onRequest', fastify.requireRole('admin'))
  const closing = new AbortController()
  fastify.addHook('preClose', async () => closing.abort())
  listRuns(fastify)
  getRun(fastify)
  startRun(fastify, opts, closing.signal)
  sessionMetrics(fastify, opts.schedules)
}

function listRuns(fastify: Admin): void {
  fastify.get(
    '/api/v1/admin/cleanup/runs',
    {
      schema: {
        tags: ['cleanup'],
        summary: 'Run history, newest first',
        querystring: CleanupRunListQuery,
        response: { 200: CleanupRunList, ...errors }
      }
    },
    async (request) => {
      const { kind, status, trigger, limit = 20, cursor } = request.query
      if (kind !== undefined && !isCleanupKind(kind)) throw new UnknownCleanupKindError(kind)
      return fastify.runHistory.list({ kind, status, trigger, limit, cursor })
    }
  )
}

function getRun(fastify: Admin): void {
  fastify.get(
    '/api/v1/admin/cleanup/runs/:id',
    { schema: { tags: ['cleanup'], summary: 'One run', params: CleanupRunParams, response: { 200: CleanupRun, 404: ErrorReply, ...errors } } },
    async (request) => {
      const run = await fastify.runHistory.get(request.params.id)
      if (!run) throw new CleanupRunNotFoundError(request.params.id)
      return run
    }
  )
}

/** Polls the shared history until the run ends, `ms` pass or the app closes: any replica may take the run. */
async function waitForRun(history: Pick<RunHistory, 'get'>, id: string, ms: number, closing: AbortSignal): Promise<CleanupRunDto | null> {
  const deadline = Date.now() + ms
  for (;;) {
    const run = await history.get(id)
    if (!run || finished(run) || Date.now() >= deadline || closing.aborted) return run
    await new Promise((resolve) => setTimeout(resolve, Math.min(RUN_POLL_MS, Math.max(0, deadline - Date.now()))))
  }
}

// 200 with the finished run when it ends within CLEANUP_RUN_WAIT_MS, else 202 with it as it stands
// (queued or running) and a Location to poll.
function startRun(fastify: Admin, opts: AdminRouteOptions, closing: AbortSignal): void {
  const { runHistory } = fastify
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
        await fastify.cleanupQueue.enqueue(id, {
          kind,
          trigger: 'manual',
          runId: id,
          ...(olderThanSeconds !== undefined ? { olderThanSeconds } : {})
        })
      } catch (err) {
        request.log.warn({ err, kind }, 'could not queue a cleanup run')
        await runHistory
          .discard(id)
          .catch((discardErr) => request.log.warn({ err: discardErr, runId: id }, 'could not discard the run that was not queued'))
        throw withRetryAfter(new QueueUnavailableError(), QUEUE_RETRY_AFTER_SECONDS)
      }
      request.log.info({ runId: id, kind, olderThanSeconds }, 'cleanup run queued by an admin')
      const run = (await waitForRun(runHistory, id, opts.runWaitMs, closing)) ?? queued
      if (finished(run)) return reply.code(200).send(run)
      return reply.code(202).header('location', `/api/v1/admin/cleanup/runs/${id}`).send(run)
    }
  )
}

/** One kind's line of the metrics reply: the run history's figures and its owning service's. */
function kindMetrics(summary: KindSummary, stats: KindStats[CleanupKind], intervalMs: number | undefined): CleanupKindMetrics {
  return {
    active_sessions: stats?.active ?? null,
    expired_sessions: stats?.expired ?? null,
    cleanup_runs: summary.runs,
    failed_runs: summary.failed,
    last_cleanup_time: summary.lastSuccessAt?.toISOString() ?? null,
    average_session_duration: stats?.averageSessionDurationSeconds ?? null,
    scheduled: intervalMs !== undefined,
    interval_seconds: intervalMs !== undefined ? intervalMs / 1000 : null
  }
}

function sessionMetrics(fastify: Admin, schedules: Schedule[]): void {
  const scheduled = new Map(schedules.map((s) => [s.kind, s.intervalMs]))
  fastify.get(
    '/api/v1/admin/cleanup/metrics',
    { schema: { tags: ['cleanup'], summary: 'Session metrics per kind', response: { 200: CleanupMetricsReply, ...errors } } },
    async () => {
      const [summary, stats] = await Promise.all([fastify.runHistory.summary(), fastify.sessionStats.get()])
      return {
        kinds: byKind((kind) => kindMetrics(summary[kind], stats[kind], scheduled.get(kind))),
        memory_usage_mb: Math.round((process.memoryUsage().rss / 1048576) * 10) / 10,
        timestamp: new Date().toISOString()
      }
    }
  )
}
