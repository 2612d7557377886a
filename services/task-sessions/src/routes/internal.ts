import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ErrorReply, TaskSessionCleanupBody, TaskSessionCleanupReply } from '@platform/contracts'

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
}
