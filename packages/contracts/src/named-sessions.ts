import { Type, type Static } from 'typebox'
import { EventEnvelope } from './events.js'
import { UserId } from './common.js'

/**
 * A title: 1..200 characters once trimmed, no control characters. The service trims before storing,
 * so the pattern only refuses what can never become valid.
 */
export const SessionTitle = Type.String({
  minLength: 1,
  maxLength: 400,
  pattern: '^[^\\u0000-\\u001f\\u007f]*$',
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
] as const

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
