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

type Api = Parameters<FastifyPluginAsyncTypebox>[0]

/** Redis could not be used: Postgres answered (X-Degradation-Mode and -Reason say so). */
function degrade(reply: FastifyReply, degraded: boolean) {
  if (degraded) addDegradation(reply, 'cache_unavailable')
}

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const tags = ['named sessions']

/** Named work sessions: one active per user (docs/architecture.md). */
export const namedSessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('preHandler', fastify.authenticate)
  listSessions(fastify)
  activeSession(fastify)
  createSession(fastify)
  activateSession(fastify)
  deleteSession(fastify)
}

function listSessions(fastify: Api) {
  const schema = {
    tags,
    summary: 'List my named sessions, newest first',
    querystring: NamedSessionListQuery,
    response: { 200: NamedSessionList, ...errors }
  }
  fastify.get('/api/v1/sessions', { schema }, async (request) => {
    const { limit = 20, cursor, userId } = request.query
    return fastify.namedSessions.list(actingUserId(request, userId), limit, cursor)
  })
}

function activeSession(fastify: Api) {
  const schema = {
    tags,
    summary: 'The id of my active session',
    querystring: UserScopeQuery,
    response: { 200: ActiveSessionReply, 404: ErrorReply, ...errors }
  }
  fastify.get('/api/v1/sessions/active', { schema }, async (request, reply) => {
    const { value, degraded } = await fastify.namedSessions.activeId(actingUserId(request, request.query.userId))
    degrade(reply, degraded)
    return { id: value }
  })
}

function createSession(fastify: Api) {
  const schema = {
    tags,
    summary: 'Create a session; it becomes the active one',
    querystring: UserScopeQuery,
    body: CreateNamedSessionBody,
    response: { 201: NamedSession, 409: ErrorReply, 422: ErrorReply, 415: ErrorReply, ...errors }
  }
  fastify.post('/api/v1/sessions', { schema }, async (request, reply) => {
    const userId = actingUserId(request, request.query.userId)
    const { value, degraded } = await fastify.namedSessions.create(userId, normalizeTitle(request.body.title))
    degrade(reply, degraded)
    return reply.code(201).send(value)
  })
}

function activateSession(fastify: Api) {
  const schema = {
    tags,
    summary: 'Make the session with this title the active one',
    params: TitleParams,
    querystring: UserScopeQuery,
    response: { 200: NamedSession, 404: ErrorReply, 422: ErrorReply, ...errors }
  }
  fastify.post('/api/v1/sessions/active/:title', { schema }, async (request, reply) => {
    const userId = actingUserId(request, request.query.userId)
    const { value, degraded } = await fastify.namedSessions.activate(userId, normalizeTitle(request.params.title))
    degrade(reply, degraded)
    return value
  })
}

function deleteSession(fastify: Api) {
  const schema = {
    tags,
    summary: 'Delete an inactive session',
    params: TitleParams,
    querystring: UserScopeQuery,
    response: { 204: Type.Null(), 404: ErrorReply, 422: ErrorReply, ...errors }
  }
  fastify.delete('/api/v1/sessions/:title', { schema }, async (request, reply) => {
    await fastify.namedSessions.remove(actingUserId(request, request.query.userId), normalizeTitle(request.params.title))
    return reply.code(204).send(null)
  })
}
