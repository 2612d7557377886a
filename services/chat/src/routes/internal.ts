import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ChatCleanupBody, ChatCleanupReply, CleanupStatsReply, ErrorReply } from '@platform/contracts'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 415: ErrorReply, 503: ErrorReply }

/** What the cleanup worker calls (service role). Not published through the gateway. */
export const internalRoutes: FastifyPluginAsyncTypebox<{ batchSize: number }> = async (fastify, opts) => {
  fastify.post(
    '/internal/cleanup',
    {
      // Authorize before anything else; a call without a body means "the defaults".
      onRequest: fastify.requireRole('service'),
      preValidation: async (request) => {
        request.body ??= {}
      },
      schema: {
        tags: ['internal'],
        summary: 'Close expired chat sessions; delete closed ones past retention with their messages, in batches',
        body: ChatCleanupBody,
        response: { 200: ChatCleanupReply, ...errors }
      }
    },
    async (request) => {
      const batchSize = request.body.batchSize ?? opts.batchSize
      const result = await fastify.chatStore.cleanup(batchSize, (closed) => {
        for (const c of closed) fastify.chatHub.announceClosed(c.id, c.closedAt.toISOString(), 'expired')
      })
      request.log.info(result, 'chat cleanup done')
      return result
    }
  )

  fastify.get(
    '/internal/cleanup/stats',
    {
      onRequest: fastify.requireRole('service'),
      schema: { tags: ['internal'], summary: 'Chat session figures for the cleanup worker', response: { 200: CleanupStatsReply, ...errors } }
    },
    async () => ({ chat_sessions: await fastify.chatStore.stats() })
  )
}
