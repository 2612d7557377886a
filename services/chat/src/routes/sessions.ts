import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import {
  ChatContextPatch,
  ChatMessageList,
  ChatMessageListQuery,
  ChatRatingBody,
  ChatSession,
  ChatSessionList,
  ChatSessionListQuery,
  ChatSessionParams,
  ErrorReply,
  type ChatSession as ChatSessionDto
} from '@platform/contracts'
import { actingUserId } from '@platform/kit'
import { ChatSessionNotFoundError } from '../domain/errors.js'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const withNotFound = { ...errors, 404: ErrorReply }

/** Chat sessions over REST (JWT): a user sees their own, an admin every one; another user's is a 404. */
export const sessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const store = fastify.chatStore
  fastify.addHook('preHandler', fastify.authenticate)

  /** The session when the caller may see it; 404 otherwise, so existence is never leaked. */
  const visible = async (request: FastifyRequest, id: string): Promise<ChatSessionDto> => {
    const session = await store.find(id)
    if (!session || !(request.user.roles.includes('admin') || session.userId === request.user.sub)) {
      throw new ChatSessionNotFoundError(id)
    }
    return session
  }
  const found = (s: ChatSessionDto | null, id: string): ChatSessionDto => {
    if (!s) throw new ChatSessionNotFoundError(id)
    return s
  }

  fastify.get(
    '/api/v1/chat/sessions',
    {
      schema: {
        tags: ['chat'],
        summary: 'List my chat sessions, newest first',
        querystring: ChatSessionListQuery,
        response: { 200: ChatSessionList, ...errors }
      }
    },
    async (request) => {
      const { limit = 20, cursor, status, userId } = request.query
      return store.list(actingUserId(request, userId), limit, cursor, status)
    }
  )

  fastify.get(
    '/api/v1/chat/sessions/:id/messages',
    {
      schema: {
        tags: ['chat'],
        summary: "A page of a session's messages, oldest first",
        params: ChatSessionParams,
        querystring: ChatMessageListQuery,
        response: { 200: ChatMessageList, ...withNotFound }
      }
    },
    async (request) => {
      await visible(request, request.params.id)
      return store.messages(request.params.id, request.query.limit ?? 50, request.query.before)
    }
  )

  fastify.patch(
    '/api/v1/chat/sessions/:id/context',
    {
      schema: {
        tags: ['chat'],
        summary: 'Merge into the session context (JSON merge patch)',
        params: ChatSessionParams,
        body: ChatContextPatch,
        response: { 200: ChatSession, 415: ErrorReply, 422: ErrorReply, ...withNotFound }
      }
    },
    async (request) => {
      await visible(request, request.params.id)
      return found(await store.patchContext(request.params.id, request.body), request.params.id)
    }
  )

  fastify.post(
    '/api/v1/chat/sessions/:id/close',
    {
      schema: {
        tags: ['chat'],
        summary: 'Close the session (idempotent)',
        params: ChatSessionParams,
        response: { 200: ChatSession, ...withNotFound }
      }
    },
    async (request) => {
      const session = await visible(request, request.params.id)
      if (session.status === 'closed') return session
      const closed = await store.close(session.id, 'user')
      if (!closed) return found(await store.find(session.id), session.id)
      if (closed.closedAt) fastify.chatHub.announceClosed(closed.id, closed.closedAt, 'user')
      return closed
    }
  )

  fastify.put(
    '/api/v1/chat/sessions/:id/rating',
    {
      schema: {
        tags: ['chat'],
        summary: 'Rate the session 1..5',
        params: ChatSessionParams,
        body: ChatRatingBody,
        response: { 200: ChatSession, 415: ErrorReply, ...withNotFound }
      }
    },
    async (request) => {
      await visible(request, request.params.id)
      return found(await store.rate(request.params.id, request.body.rating), request.params.id)
    }
  )
}
