import { Type, type Static } from 'typebox'
import { EventEnvelope } from './events.js'
import { UserId } from './common.js'
import { errorResponse as e, type ErrorCode } from './errors.js'
import type { RouteContract } from './routes.js'

/**
 * A title as sent. The service trims it and then requires 1..200 characters and no control
 * characters (422 INVALID_TITLE); the schema only bounds the size of what it reads.
 */
export const SessionTitle = Type.String({
  maxLength: 1000,
  description: '1-200 characters after trimming; control characters are refused'
})
export const TITLE_MAX_LENGTH = 200

export const NamedSession = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    userId: Type.String(),
    title: Type.String(),
    active: Type.Boolean(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' })
  },
  { $id: 'NamedSession' }
)
export type NamedSession = Static<typeof NamedSession>

export const NamedSessionListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    userId: Type.Optional(UserId)
  },
  { additionalProperties: false }
)
export type NamedSessionListQuery = Static<typeof NamedSessionListQuery>

export const NamedSessionList = Type.Object({
  items: Type.Array(NamedSession),
  nextCursor: Type.Union([Type.String(), Type.Null()])
})
export type NamedSessionList = Static<typeof NamedSessionList>

export const CreateNamedSessionBody = Type.Object({ title: SessionTitle }, { additionalProperties: false })
export type CreateNamedSessionBody = Static<typeof CreateNamedSessionBody>

export const TitleParams = Type.Object({ title: SessionTitle }, { additionalProperties: false })
export type TitleParams = Static<typeof TitleParams>

/** Admins act on another user's sessions with `?userId=`. */
export const UserScopeQuery = Type.Object({ userId: Type.Optional(UserId) }, { additionalProperties: false })
export type UserScopeQuery = Static<typeof UserScopeQuery>

export const ActiveSessionReply = Type.Object({ id: Type.String({ format: 'uuid' }) })
export type ActiveSessionReply = Static<typeof ActiveSessionReply>

export const NamedSessionErrorCodes = [
  'NO_ACTIVE_SESSION',
  'SESSION_NOT_FOUND',
  'DUPLICATE_SESSION_TITLE',
  'ACTIVE_SESSION_DELETION',
  'INVALID_TITLE',
  'INVALID_CURSOR'
] as const satisfies readonly ErrorCode[]

export const NamedSessionEventData = Type.Object({
  sessionId: Type.String({ format: 'uuid' }),
  userId: Type.String(),
  title: Type.String(),
  /** The session deactivated by this change, when there was one. */
  previousActiveId: Type.Optional(Type.Union([Type.String({ format: 'uuid' }), Type.Null()]))
})
export type NamedSessionEventData = Static<typeof NamedSessionEventData>

export const NamedSessionSubjects = {
  created: 'sessions.named.created',
  activated: 'sessions.named.activated',
  deleted: 'sessions.named.deleted'
} as const

export const NamedSessionCreated = EventEnvelope(NamedSessionSubjects.created, NamedSessionEventData)
export const NamedSessionActivated = EventEnvelope(NamedSessionSubjects.activated, NamedSessionEventData)
export const NamedSessionDeleted = EventEnvelope(NamedSessionSubjects.deleted, NamedSessionEventData)
export type NamedSessionCreated = Static<typeof NamedSessionCreated>

const authErrors = { 400: e(['VALIDATION_ERROR']), 401: e(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED']), 403: e(['FORBIDDEN']) }

/** The named-session API as published through the gateway. */
export const NamedSessionRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/api/v1/sessions',
    tag: 'named sessions',
    auth: 'user',
    summary: 'List my named sessions, newest first (admin: ?userId=)',
    querystring: NamedSessionListQuery,
    responses: { 200: { description: 'A page of sessions', schema: NamedSessionList }, ...authErrors, 400: e(['VALIDATION_ERROR', 'INVALID_CURSOR']) }
  },
  {
    method: 'GET',
    path: '/api/v1/sessions/active',
    tag: 'named sessions',
    auth: 'user',
    summary: 'The id of my active session',
    querystring: UserScopeQuery,
    responses: { 200: { description: 'The active id', schema: ActiveSessionReply }, 404: e(['NO_ACTIVE_SESSION']), ...authErrors }
  },
  {
    method: 'POST',
    path: '/api/v1/sessions',
    tag: 'named sessions',
    auth: 'user',
    summary: 'Create a session; it becomes the active one',
    querystring: UserScopeQuery,
    body: CreateNamedSessionBody,
    responses: {
      201: { description: 'Created and active', schema: NamedSession },
      409: e(['DUPLICATE_SESSION_TITLE']),
      422: e(['INVALID_TITLE']),
      ...authErrors
    }
  },
  {
    method: 'POST',
    path: '/api/v1/sessions/active/{title}',
    tag: 'named sessions',
    auth: 'user',
    summary: 'Make the session with this title the active one',
    params: TitleParams,
    querystring: UserScopeQuery,
    responses: { 200: { description: 'Now active', schema: NamedSession }, 404: e(['SESSION_NOT_FOUND']), 422: e(['INVALID_TITLE']), ...authErrors }
  },
  {
    method: 'DELETE',
    path: '/api/v1/sessions/{title}',
    tag: 'named sessions',
    auth: 'user',
    summary: 'Delete an inactive session',
    params: TitleParams,
    querystring: UserScopeQuery,
    responses: {
      204: { description: 'Deleted' },
      400: e(['ACTIVE_SESSION_DELETION', 'VALIDATION_ERROR']),
      401: authErrors[401],
      403: authErrors[403],
      404: e(['SESSION_NOT_FOUND']),
      422: e(['INVALID_TITLE'])
    }
  }
]
