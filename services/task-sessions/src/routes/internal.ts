import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CleanupStatsReply, ErrorReply, TaskSessionCleanupBody, TaskSessionCleanupReply } from '@platform/contracts'

export interface InternalRouteOptions {
  retentionDays: number
  batchSize: number
}

/** Routes for other services only (service role); the gateway never exposes /internal. */
export const internalRoutes: FastifyPluginAsyncTypebox<InternalRouteOptions> = async (fastify, opts) => {
  fastify.post(
    '/internal/cleanup',
    {
      onRequest: fastify.requireRole('service'),
      // An empty POST means "the defaults".
      preValidation: async (request) => {
        request.body ??= {}
      },
      schema: {
        summary: 'Remove completed/failed task sessions older than the retention, in batches',
        body: TaskSessionCleanupBody,
        response: { 200: TaskSessionCleanupReply, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
      }
    },
    async (request) => {
      const { olderThanSeconds = Math.round(opts.retentionDays * 86_400), batchSize = opts.batchSize } = request.body
      const result = await fastify.taskStore.cleanup({ olderThanSeconds, batchSize })
      request.log.info(result, 'task-session cleanup done')
      return result
    }
  )

  fastify.get(
    '/internal/cleanup/stats',
    {
      onRequest: fastify.requireRole('service'),
      schema: {
        summary: 'Figures for the cleanup worker: live sessions, finished ones past retention, mean duration',
        response: { 200: CleanupStatsReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
      }
    },
    async () => {
      const { rows } = await fastify.db.pool.query<{ active: string; expired: string; avg: number | null }>(
        `SELECT count(*) FILTER (WHERE status = 'active') AS active,
                count(*) FILTER (WHERE status <> 'active' AND created_at < now() - make_interval(secs => $1)) AS expired,
                avg(EXTRACT(EPOCH FROM (updated_at - created_at))) FILTER (WHERE status <> 'active')::float8 AS avg
           FROM ${fastify.db.table('task_sessions')}`,
        [Math.round(opts.retentionDays * 86_400)]
      )
      const row = rows[0]
      return {
        task_sessions: {
          active: Number(row?.active ?? 0),
          expired: Number(row?.expired ?? 0),
          averageSessionDurationSeconds: Math.round(row?.avg ?? 0)
        }
      }
    }
  )
}
