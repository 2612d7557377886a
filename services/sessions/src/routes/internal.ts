import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  CleanupBody,
  CleanupStatsReply,
  CleanupReply,
  EndLoginSessionBody,
  ErrorReply,
  LoginActivityBody,
  LoginSessionParams,
  LoginSessionState,
  ResolveLoginSessionBody
} from '@platform/contracts'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }

/** Service-to-service routes (service role); the gateway never exposes /internal/*. */
export const internalRoutes: FastifyPluginAsyncTypebox<{ cleanupBatchSize: number; namedSessionMaxAgeDays: number | undefined }> = async (
  fastify,
  opts
) => {
  const service = fastify.loginSessions
  fastify.addHook('preHandler', fastify.requireRole('service'))

  fastify.post(
    '/internal/login-sessions/resolve',
    { schema: { body: ResolveLoginSessionBody, response: { 200: LoginSessionState, 429: ErrorReply, ...errors } } },
    async (request) => service.resolve(request.body)
  )

  fastify.post(
    '/internal/login-sessions/:id/end',
    { schema: { params: LoginSessionParams, body: EndLoginSessionBody, response: { 200: LoginSessionState, 404: ErrorReply, ...errors } } },
    async (request) => service.end(request.params.id, request.body)
  )

  fastify.post(
    '/internal/login-sessions/activity',
    { schema: { body: LoginActivityBody, response: { 200: Type.Object({ updated: Type.Integer() }), ...errors } } },
    async (request) => ({ updated: await service.recordActivity(request.body.items) })
  )

  fastify.post(
    '/internal/cleanup',
    { schema: { body: Type.Optional(CleanupBody), response: { 200: CleanupReply, ...errors } } },
    async (request) =>
      service.cleanup({ olderThanSeconds: request.body?.olderThanSeconds, batchSize: request.body?.batchSize ?? opts.cleanupBatchSize })
  )

  fastify.get('/internal/cleanup/stats', { schema: { response: { 200: CleanupStatsReply, ...errors } } }, async () => {
    const maxAge = opts.namedSessionMaxAgeDays ? opts.namedSessionMaxAgeDays * 86400 : undefined
    const [login, named] = await Promise.all([service.stats(), fastify.namedSessions.stats(maxAge)])
    return { login_sessions: login, named_sessions: named }
  })

  // Named sessions expire only when an age is configured here or passed by the caller.
  fastify.post(
    '/internal/cleanup/named-sessions',
    { schema: { body: Type.Optional(CleanupBody), response: { 200: CleanupReply, ...errors } } },
    async (request) => {
      const maxAge = request.body?.olderThanSeconds ?? (opts.namedSessionMaxAgeDays ? opts.namedSessionMaxAgeDays * 86400 : undefined)
      if (maxAge === undefined) return { removed: 0, batches: 0, errors: 0, durationMs: 0 }
      return fastify.namedSessions.cleanup(maxAge, request.body?.batchSize ?? opts.cleanupBatchSize)
    }
  )
}
