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

type Api = Parameters<FastifyPluginAsyncTypebox>[0]

/** The user's own login/device sessions: list, revoke one, revoke others, log out; metrics for admins. */
export const loginSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('preHandler', fastify.authenticate)
  listSessions(fastify)
  sessionMetrics(fastify)
  revokeSession(fastify)
  revokeOthers(fastify)
  logout(fastify)
}

function listSessions(fastify: Api) {
  const schema = { querystring: LoginSessionListQuery, response: { 200: LoginSessionList, ...errors } }
  fastify.get('/api/v1/login-sessions', { schema }, async (request) => {
    const { limit = 20, cursor, userId, state = 'active' } = request.query
    return fastify.loginSessions.list(actingUserId(request, userId), request.user.sid, { limit, cursor, state })
  })
}

function sessionMetrics(fastify: Api) {
  const schema = { response: { 200: LoginSessionMetrics, ...errors } }
  fastify.get('/api/v1/login-sessions/metrics', { preHandler: fastify.requireRole('admin'), schema }, async () => fastify.loginSessions.metrics())
}

function revokeSession(fastify: Api) {
  const schema = { params: LoginSessionParams, response: { 204: Type.Null(), 404: ErrorReply, ...errors } }
  fastify.delete('/api/v1/login-sessions/:id', { schema }, async (request, reply) => {
    const admin = request.user.roles.includes('admin')
    await fastify.loginSessions.end(request.params.id, { reason: 'revoked' }, admin ? undefined : request.user.sub)
    return reply.code(204).send(null)
  })
}

function revokeOthers(fastify: Api) {
  const schema = { querystring: RevokeQuery, response: { 200: RevokeReply, ...errors } }
  fastify.delete('/api/v1/login-sessions', { schema }, async (request) => {
    if (request.query.others !== true) throw new OthersRequiredError()
    return { ended: await fastify.loginSessions.endOthers(request.user.sub, request.user.sid) }
  })
}

function logout(fastify: Api) {
  const schema = { response: { 204: Type.Null(), 404: ErrorReply, ...errors } }
  fastify.post('/api/v1/login-sessions/logout', { schema }, async (request, reply) => {
    const sid = request.user.sid
    if (!sid) throw new SessionRequiredError()
    await fastify.loginSessions.end(sid, { reason: 'logout' }, request.user.sub)
    return reply.code(204).send(null)
  })
}
