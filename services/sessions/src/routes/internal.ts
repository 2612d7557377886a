import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  CleanupBody,
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
export const internalRoutes: FastifyPluginAsyncTypebox<{ cleanupBatchSize: number }> = async (fastify, opts) => {
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
}
