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
import type { ChatStore } from '../store/chat-store.js'

const errors = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 503: ErrorReply }
const withNotFound = { ...errors, 404: ErrorReply }

const schemas = {
  list: {
    tags: ['chat'],
    summary: 'List my chat sessions, newest first',
    querystring: ChatSessionListQuery,
    response: { 200: ChatSessionList, ...errors }
  },
  messages: {
    tags: ['chat'],
    summary: "A page of a session's messages, oldest first",
    params: ChatSessionParams,
    querystring: ChatMessageListQuery,
    response: { 200: ChatMessageList, ...withNotFound }
  },
  context: {
    tags: ['chat'],
    summary: 'Merge into the session context (JSON merge patch)',
    params: ChatSessionParams,
    body: ChatContextPatch,
    response: { 200: ChatSession, 415: ErrorReply, 422: ErrorReply, ...withNotFound }
  },
  close: {
    tags: ['chat'],
    summary: 'Close the session (idempotent)',
    params: ChatSessionParams,
    response: { 200: ChatSession, ...withNotFound }
  },
  rating: {
    tags: ['chat'],
    summary: 'Rate the session 1..5',
    params: ChatSessionParams,
    body: ChatRatingBody,
    response: { 200: ChatSession, 415: ErrorReply, ...withNotFound }
  }
}

/** The session when the caller may see it (their own, or any for an admin); 404 otherwise, so existence is never leaked. */
async function visible(store: ChatStore, request: FastifyRequest, id: string): Promise<ChatSessionDto> {
  const session = await store.find(id)
  if (!session || !(request.user.roles.includes('admin') || session.userId === request.user.sub)) {
    throw new ChatSessionNotFoundError(id)
  }
  return session
}

function found(s: ChatSessionDto | null, id: string): ChatSessionDto {
  if (!s) throw new ChatSessionNotFoundError(id)
  return s
}

/** Chat sessions over REST (JWT): a user sees their own, an admin every one; another user's is a 404. */
export const sessionRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const store = fastify.chatStore
  fastify.addHook('preHandler', fastify.authenticate)

  fastify.get('/api/v1/chat/sessions', { schema: schemas.list }, async (request) => {
    const { limit = 20, cursor, status, userId } = request.query
    return store.list(actingUserId(request, userId), limit, cursor, status)
  })

  fastify.get('/api/v1/chat/sessions/:id/messages', { schema: schemas.messages }, async (request) => {
    await visible(store, request, request.params.id)
    return store.messages(request.params.id, request.query.limit ?? 50, request.query.before)
  })

  fastify.patch('/api/v1/chat/sessions/:id/context', { schema: schemas.context }, async (request) => {
    await visible(store, request, request.params.id)
    return found(await store.patchContext(request.params.id, request.body), request.params.id)
  })

  fastify.post('/api/v1/chat/sessions/:id/close', { schema: schemas.close }, async (request) => {
    const session = await visible(store, request, request.params.id)
    if (session.status === 'closed') return session
    const closed = await store.close(session.id, 'user')
    if (!closed) return found(await store.find(session.id), session.id)
    if (closed.closedAt) fastify.chatHub.announceClosed(closed.id, closed.closedAt, 'user')
    return closed
  })

  fastify.put('/api/v1/chat/sessions/:id/rating', { schema: schemas.rating }, async (request) => {
    await visible(store, request, request.params.id)
    return found(await store.rate(request.params.id, request.body.rating), request.params.id)
  })
}
