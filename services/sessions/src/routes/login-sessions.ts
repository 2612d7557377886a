import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ErrorReply,
  LoginSessionList,
  LoginSessionListQuery,
  LoginSessionMetrics,
  LoginSessionParams,
  RevokeQuery,
  RevokeReply
} from '@platform/contracts'
import { actingUserId } from '@platform/kit'
import { OthersRequiredError, SessionRequiredError } from '../domain/errors.js'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }

/** The user's own login/device sessions: list, revoke one, revoke others, log out; metrics for admins. */
export const loginSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const service = fastify.loginSessions
  fastify.addHook('preHandler', fastify.authenticate)

  fastify.get(
    '/api/v1/login-sessions',
    { schema: { querystring: LoginSessionListQuery, response: { 200: LoginSessionList, ...errors } } },
    async (request) => {
      const { limit = 20, cursor, userId, state = 'active' } = request.query
      return service.list(actingUserId(request, userId), request.user.sid, { limit, cursor, state })
    }
  )

  fastify.get(
    '/api/v1/login-sessions/metrics',
    { preHandler: fastify.requireRole('admin'), schema: { response: { 200: LoginSessionMetrics, ...errors } } },
    async () => service.metrics()
  )

  fastify.delete(
    '/api/v1/login-sessions/:id',
    { schema: { params: LoginSessionParams, response: { 204: Type.Null(), 404: ErrorReply, ...errors } } },
    async (request, reply) => {
      const admin = request.user.roles.includes('admin')
      await service.end(request.params.id, { reason: 'revoked' }, admin ? undefined : request.user.sub)
      return reply.code(204).send(null)
    }
  )

  fastify.delete(
    '/api/v1/login-sessions',
    { schema: { querystring: RevokeQuery, response: { 200: RevokeReply, ...errors } } },
    async (request) => {
      if (request.query.others !== true) throw new OthersRequiredError()
      return { ended: await service.endOthers(request.user.sub, request.user.sid) }
    }
  )

  fastify.post(
    '/api/v1/login-sessions/logout',
    { schema: { response: { 204: Type.Null(), 404: ErrorReply, ...errors } } },
    async (request, reply) => {
      const sid = request.user.sid
      if (!sid) throw new SessionRequiredError()
      await service.end(sid, { reason: 'logout' }, request.user.sub)
      return reply.code(204).send(null)
    }
  )
}
