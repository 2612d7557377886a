import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { CleanupStatsReply, ErrorReply, TaskSessionCleanupBody, TaskSessionCleanupReply } from '@platform/contracts'

export interface InternalRouteOptions {
  retentionDays: number
  batchSize: number
}

type Api = Parameters<FastifyPluginAsyncTypebox>[0]

/** Routes for other services only (service role); the gateway never exposes /internal. */
export const internalRoutes: FastifyPluginAsyncTypebox<InternalRouteOptions> = async (fastify, opts) => {
  fastify.addHook('onRequest', fastify.requireRole('service'))
  cleanupRoute(fastify, opts)
  statsRoute(fastify, opts)
}

function cleanupRoute(fastify: Api, opts: InternalRouteOptions) {
  const schema = {
    summary: 'Remove completed/failed task sessions older than the retention, in batches',
    body: TaskSessionCleanupBody,
    response: { 200: TaskSessionCleanupReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
  }
  // An empty POST means "the defaults".
  const preValidation = async (request: FastifyRequest) => {
    request.body ??= {}
  }
  fastify.post('/internal/cleanup', { preValidation, schema }, async (request) => {
    const { olderThanSeconds = Math.round(opts.retentionDays * 86_400), batchSize = opts.batchSize } = request.body
    const result = await fastify.taskStore.cleanup({ olderThanSeconds, batchSize })
    request.log.info(result, 'task-session cleanup done')
    return result
  })
}

function statsRoute(fastify: Api, opts: InternalRouteOptions) {
  const schema = {
    summary: 'Figures for the cleanup worker: live sessions, finished ones past retention, mean duration',
    response: { 200: CleanupStatsReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
  }
  fastify.get('/internal/cleanup/stats', { schema }, async () => {
    const { rows } = await fastify.db.pool.query<{ active: string; expired: string; avg: number | null }>(
      `SELECT count(*) FILTER (WHERE status = 'active') AS active,
              count(*) FILTER (WHERE status <> 'active' AND created_at < now() - make_interval(secs => $1)) AS expired,
              avg(EXTRACT(EPOCH FROM (updated_at - created_at))) FILTER (WHERE status <> 'active')::float8 AS avg
         FROM ${fastify.db.table('task_sessions')}`,
      [Math.round(opts.retentionDays * 86_400)]
    )
    const row = rows[0]
    const figures = { active: Number(row?.active ?? 0), expired: Number(row?.expired ?? 0), averageSessionDurationSeconds: Math.round(row?.avg ?? 0) }
    return { task_sessions: figures }
  })
}
