import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import {
  ActiveSessionReply,
  addDegradation,
  CreateNamedSessionBody,
  ErrorReply,
  NamedSession,
  NamedSessionList,
  NamedSessionListQuery,
  TitleParams,
  UserScopeQuery
} from '@platform/contracts'
import { actingUserId } from '@platform/kit'
import type { FastifyReply } from 'fastify'
import { normalizeTitle } from '../domain/titles.js'

/** Redis could not be used: Postgres answered (X-Degradation-Mode and -Reason say so). */
function degrade(reply: FastifyReply, degraded: boolean) {
  if (degraded) addDegradation(reply, 'cache_unavailable')
}

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }

/** Named work sessions: one active per user (docs/architecture.md). */
export const namedSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const service = fastify.namedSessions
  fastify.addHook('preHandler', fastify.authenticate)

  fastify.get(
    '/api/v1/sessions',
    {
      schema: {
        tags: ['named sessions'],
        summary: 'List my named sessions, newest first',
        querystring: NamedSessionListQuery,
        response: { 200: NamedSessionList, ...errors }
      }
    },
    async (request) => {
      const { limit = 20, cursor, userId } = request.query
      return service.list(actingUserId(request, userId), limit, cursor)
    }
  )

  fastify.get(
    '/api/v1/sessions/active',
    {
      schema: {
        tags: ['named sessions'],
        summary: 'The id of my active session',
        querystring: UserScopeQuery,
        response: { 200: ActiveSessionReply, 404: ErrorReply, ...errors }
      }
    },
    async (request, reply) => {
      const { value, degraded } = await service.activeId(actingUserId(request, request.query.userId))
      degrade(reply, degraded)
      return { id: value }
    }
  )

  fastify.post(
    '/api/v1/sessions',
    {
      schema: {
        tags: ['named sessions'],
        summary: 'Create a session; it becomes the active one',
        querystring: UserScopeQuery,
        body: CreateNamedSessionBody,
        response: { 201: NamedSession, 409: ErrorReply, 422: ErrorReply, 415: ErrorReply, ...errors }
      }
    },
    async (request, reply) => {
      const userId = actingUserId(request, request.query.userId)
      const { value, degraded } = await service.create(userId, normalizeTitle(request.body.title))
      degrade(reply, degraded)
      return reply.code(201).send(value)
    }
  )

  fastify.post(
    '/api/v1/sessions/active/:title',
    {
      schema: {
        tags: ['named sessions'],
        summary: 'Make the session with this title the active one',
        params: TitleParams,
        querystring: UserScopeQuery,
        response: { 200: NamedSession, 404: ErrorReply, 422: ErrorReply, ...errors }
      }
    },
    async (request, reply) => {
      const userId = actingUserId(request, request.query.userId)
      const { value, degraded } = await service.activate(userId, normalizeTitle(request.params.title))
      degrade(reply, degraded)
      return value
    }
  )

  fastify.delete(
    '/api/v1/sessions/:title',
    {
      schema: {
        tags: ['named sessions'],
        summary: 'Delete an inactive session',
        params: TitleParams,
        querystring: UserScopeQuery,
        response: { 204: Type.Null(), 404: ErrorReply, 422: ErrorReply, ...errors }
      }
    },
    async (request, reply) => {
      await service.remove(actingUserId(request, request.query.userId), normalizeTitle(request.params.title))
      return reply.code(204).send(null)
    }
  )
}
