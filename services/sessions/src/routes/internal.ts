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

type Api = Parameters<FastifyPluginAsyncTypebox>[0]

export interface InternalRouteOptions {
  cleanupBatchSize: number
  namedSessionMaxAgeDays: number | undefined
}

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }

/** Service-to-service routes (service role); the gateway never exposes /internal/*. */
export const internalRoutes: FastifyPluginAsyncTypebox<InternalRouteOptions> = async (fastify, opts) => {
  fastify.addHook('preHandler', fastify.requireRole('service'))
  loginSessionRoutes(fastify)
  cleanupRoutes(fastify, opts)
}

/** The gateway's guard: resolve a sid, end a session, report batched activity. */
function loginSessionRoutes(fastify: Api) {
  const service = fastify.loginSessions
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
}

/** The cleanup worker's: expire login sessions, delete old named ones, the figures of both. */
function cleanupRoutes(fastify: Api, opts: InternalRouteOptions) {
  const namedMaxAge = opts.namedSessionMaxAgeDays ? opts.namedSessionMaxAgeDays * 86400 : undefined
  const schema = { body: Type.Optional(CleanupBody), response: { 200: CleanupReply, ...errors } }
  fastify.post('/internal/cleanup', { schema }, async (request) =>
    fastify.loginSessions.cleanup({ olderThanSeconds: request.body?.olderThanSeconds, batchSize: request.body?.batchSize ?? opts.cleanupBatchSize })
  )
  fastify.get('/internal/cleanup/stats', { schema: { response: { 200: CleanupStatsReply, ...errors } } }, async () => {
    const [login, named] = await Promise.all([fastify.loginSessions.stats(), fastify.namedSessions.stats(namedMaxAge)])
    return { login_sessions: login, named_sessions: named }
  })
  // Named sessions expire only when an age is configured here or passed by the caller.
  fastify.post('/internal/cleanup/named-sessions', { schema }, async (request) => {
    const maxAge = request.body?.olderThanSeconds ?? namedMaxAge
    if (maxAge === undefined) return { removed: 0, batches: 0, errors: 0, durationMs: 0 }
    return fastify.namedSessions.cleanup(maxAge, request.body?.batchSize ?? opts.cleanupBatchSize)
  })
}
