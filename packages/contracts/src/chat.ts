// One file for the whole chat contract (frames, REST, events, routes): the protocol reads in one place.
import { Type, type Static, type TProperties } from 'typebox'
import { EventEnvelope } from './events.js'
import { UserId } from './common.js'
import { errorResponse as e, type ErrorCode } from './errors.js'
import type { RouteContract } from './routes.js'

// ---------------------------------------------------------------------------------------------
// Shared shapes
// ---------------------------------------------------------------------------------------------

/** Message ids are a database sequence (monotonic, orderable), sent as decimal strings. */
export const ChatMessageId = Type.String({ pattern: '^[1-9][0-9]{0,18}$', description: 'Monotonic message id (decimal string)' })
export const ChatSessionId = Type.String({ format: 'uuid' })

export const ChatUserType = Type.Union([Type.Literal('client'), Type.Literal('provider'), Type.Literal('anonymous')])
export type ChatUserType = Static<typeof ChatUserType>

export const ChatSessionStatus = Type.Union([Type.Literal('active'), Type.Literal('closed')])
export type ChatSessionStatus = Static<typeof ChatSessionStatus>

export const ChatSender = Type.Union([Type.Literal('user'), Type.Literal('assistant'), Type.Literal('system')])
export type ChatSender = Static<typeof ChatSender>

/** Free-form JSON object (session context, message metadata). */
export const ChatJsonObject = Type.Record(Type.String(), Type.Unknown())
export type ChatJsonObject = Static<typeof ChatJsonObject>

/** One stored chat message, as REST and the `session` frame's history return it. */
export const ChatMessage = Type.Object(
  {
    id: ChatMessageId,
    chatSessionId: ChatSessionId,
    /** Position in its session: 1, 2, 3, ... without gaps. */
    seq: Type.Integer({ minimum: 1 }),
    sender: ChatSender,
    content: Type.String(),
    metadata: ChatJsonObject,
    processingMs: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' })
  },
  { $id: 'ChatMessage' }
)
export type ChatMessage = Static<typeof ChatMessage>

export const ChatSession = Type.Object(
  {
    id: ChatSessionId,
    userId: Type.Union([Type.String(), Type.Null()]),
    userType: ChatUserType,
    status: ChatSessionStatus,
    context: ChatJsonObject,
    satisfactionRating: Type.Union([Type.Integer({ minimum: 1, maximum: 5 }), Type.Null()]),
    /** How many messages the session holds (the seq of the last one). */
    messageCount: Type.Integer({ minimum: 0 }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    closedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    expiresAt: Type.String({ format: 'date-time' })
  },
  { $id: 'ChatSession' }
)
export type ChatSession = Static<typeof ChatSession>

// ---------------------------------------------------------------------------------------------
// WebSocket protocol (/ws/chat): JSON text frames
// ---------------------------------------------------------------------------------------------

/** Close codes the server uses. */
export const ChatCloseCodes = {
  /** The frame exceeded maxPayload (16 KiB). */
  messageTooBig: 1009,
  /** The server is restarting: reconnect (with lastMessageId) after a short delay. */
  serviceRestart: 1012,
  /** The unsent buffer passed the limit (1 MiB): the client does not read fast enough. */
  slowConsumer: 4008,
  /** Missing (when anonymous chat is off), invalid or expired token. */
  unauthorized: 4401
} as const

export const CHAT_MAX_PAYLOAD_BYTES = 16 * 1024

/** A client's correlation id, echoed in the reply to that frame. */
export const ChatFrameRef = Type.Union([Type.String({ minLength: 1, maxLength: 128 }), Type.Integer()])
export type ChatFrameRef = Static<typeof ChatFrameRef>

const clientFrame = <K extends string, T extends TProperties>(type: K, props: T) =>
  Type.Object({ type: Type.Literal(type), ref: Type.Optional(ChatFrameRef), ...props }, { additionalProperties: false })

/** Start a new session (no id) or resume one, replaying what came after `lastMessageId`. */
export const ChatSessionInitFrame = clientFrame('session_init', {
  chatSessionId: Type.Optional(ChatSessionId),
  lastMessageId: Type.Optional(ChatMessageId)
})
export type ChatSessionInitFrame = Static<typeof ChatSessionInitFrame>

/** A user message; emptiness and length are checked by the service (EMPTY_MESSAGE, MESSAGE_TOO_LONG). */
export const ChatSendMessageFrame = clientFrame('message', { content: Type.String() })
export type ChatSendMessageFrame = Static<typeof ChatSendMessageFrame>

export const ChatTypingFrame = clientFrame('typing', { isTyping: Type.Boolean() })
export type ChatTypingFrame = Static<typeof ChatTypingFrame>

export const ChatSessionCloseFrame = clientFrame('session_close', {})
export type ChatSessionCloseFrame = Static<typeof ChatSessionCloseFrame>

/** Every frame a client may send, by `type`. */
export const ChatClientFrames = {
  session_init: ChatSessionInitFrame,
  message: ChatSendMessageFrame,
  typing: ChatTypingFrame,
  session_close: ChatSessionCloseFrame
} as const
export type ChatClientFrameType = keyof typeof ChatClientFrames
export type ChatClientFrame = ChatSessionInitFrame | ChatSendMessageFrame | ChatTypingFrame | ChatSessionCloseFrame

/** Server frames are closed (no property beyond these): a client may validate them strictly. */
export const ChatWelcomeFrame = Type.Object(
  {
    type: Type.Literal('welcome'),
    connectionId: Type.String(),
    user: Type.Object({ id: Type.String(), type: ChatUserType }, { additionalProperties: false }),
    serverTime: Type.String({ format: 'date-time' }),
    limits: Type.Object(
      {
        maxMessageLength: Type.Integer(),
        messagesPerMinute: Type.Integer(),
        maxPayloadBytes: Type.Integer()
      },
      { additionalProperties: false }
    )
  },
  { additionalProperties: false }
)
export type ChatWelcomeFrame = Static<typeof ChatWelcomeFrame>

export const ChatSessionFrame = Type.Object(
  {
    type: Type.Literal('session'),
    ref: Type.Optional(ChatFrameRef),
    chatSessionId: ChatSessionId,
    status: ChatSessionStatus,
    /** Oldest first. */
    history: Type.Array(ChatMessage),
    /** True when every message after lastMessageId was replayed; false when history is the latest page instead. */
    recovered: Type.Boolean(),
    /** False when this connection may only read (an admin in another user's session). */
    canWrite: Type.Boolean()
  },
  { additionalProperties: false }
)
export type ChatSessionFrame = Static<typeof ChatSessionFrame>

export const ChatMessageFrame = Type.Object(
  {
    type: Type.Literal('message'),
    ref: Type.Optional(ChatFrameRef),
    ...ChatMessage.properties
  },
  { additionalProperties: false }
)
export type ChatMessageFrame = Static<typeof ChatMessageFrame>

export const ChatTypingServerFrame = Type.Object(
  {
    type: Type.Literal('typing'),
    chatSessionId: ChatSessionId,
    userId: Type.String(),
    isTyping: Type.Boolean()
  },
  { additionalProperties: false }
)
export type ChatTypingServerFrame = Static<typeof ChatTypingServerFrame>

export const ChatSessionClosedFrame = Type.Object(
  {
    type: Type.Literal('session_closed'),
    ref: Type.Optional(ChatFrameRef),
    chatSessionId: ChatSessionId,
    closedAt: Type.String({ format: 'date-time' }),
    reason: Type.Union([Type.Literal('user'), Type.Literal('expired')])
  },
  { additionalProperties: false }
)
export type ChatSessionClosedFrame = Static<typeof ChatSessionClosedFrame>

/**
 * Codes of the WebSocket `error` frame, each with what it tells the client (not HTTP: no status).
 * None of them closes the socket. Some share a name with an HTTP code (docs/errors.md) and mean the same.
 */
export const ChatErrorCatalogue = {
  EMPTY_MESSAGE: { meaning: 'The message is empty; write something first' },
  MESSAGE_TOO_LONG: { meaning: 'The message has more characters than allowed; shorten it' },
  RATE_LIMITED: { meaning: 'Too many messages; resend after retryAfterMs' },
  INVALID_FRAME: { meaning: 'The frame is not JSON text or does not match its type; fix the frame' },
  UNKNOWN_TYPE: { meaning: 'No client frame has this type; send session_init, message, typing or session_close' },
  NO_SESSION: { meaning: 'There is no chat session on this connection; send session_init first' },
  SESSION_NOT_FOUND: { meaning: "No such chat session, or it is another user's; start a new one" },
  SESSION_CLOSED: { meaning: 'The chat session is closed; start a new one with session_init' },
  FORBIDDEN: { meaning: 'You may read this chat session but not write in it' },
  DATABASE_UNAVAILABLE: { meaning: 'Postgres is unreachable and nothing was stored; resend after retryAfterMs' },
  SERVICE_UNAVAILABLE: { meaning: 'The instance is shutting down; reconnect and resend' },
  INTERNAL_ERROR: { meaning: 'A fault on our side; resend' }
} as const satisfies Record<string, { meaning: string }>

export type ChatErrorCode = keyof typeof ChatErrorCatalogue
export const ChatErrorCodes = Object.keys(ChatErrorCatalogue).filter((code): code is ChatErrorCode => Object.hasOwn(ChatErrorCatalogue, code))
export const ChatErrorCode = Type.Unsafe<ChatErrorCode>({ type: 'string', enum: ChatErrorCodes })

export const ChatErrorFrame = Type.Object(
  {
    type: Type.Literal('error'),
    code: ChatErrorCode,
    message: Type.String(),
    retryable: Type.Boolean(),
    retryAfterMs: Type.Optional(Type.Integer({ minimum: 0 })),
    ref: Type.Optional(ChatFrameRef)
  },
  { additionalProperties: false }
)
export type ChatErrorFrame = Static<typeof ChatErrorFrame>

export type ChatServerFrame = ChatWelcomeFrame | ChatSessionFrame | ChatMessageFrame | ChatTypingServerFrame | ChatSessionClosedFrame | ChatErrorFrame

/**
 * What chat instances exchange on core NATS `chat.live.<chatSessionId>` (not a public API):
 * the frame plus the instance and connection it came from.
 */
export const ChatLiveEnvelope = Type.Object({
  origin: Type.String({ minLength: 1 }),
  connectionId: Type.Optional(Type.String()),
  frame: Type.Union([ChatMessageFrame, ChatTypingServerFrame, ChatSessionClosedFrame])
})
export type ChatLiveEnvelope = Static<typeof ChatLiveEnvelope>

export const chatLiveSubject = (chatSessionId: string) => `chat.live.${chatSessionId}`

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

export const ChatSessionParams = Type.Object({ id: ChatSessionId }, { additionalProperties: false })
export type ChatSessionParams = Static<typeof ChatSessionParams>

export const ChatSessionListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    status: Type.Optional(ChatSessionStatus),
    /** Admins only: another user's sessions. */
    userId: Type.Optional(UserId)
  },
  { additionalProperties: false }
)
export type ChatSessionListQuery = Static<typeof ChatSessionListQuery>

export const ChatSessionList = Type.Object({
  items: Type.Array(ChatSession),
  nextCursor: Type.Union([Type.String(), Type.Null()])
})
export type ChatSessionList = Static<typeof ChatSessionList>

export const ChatMessageListQuery = Type.Object(
  {
    /** A message id: return messages older than it (the `nextCursor` of the previous page). */
    before: Type.Optional(ChatMessageId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 50 }))
  },
  { additionalProperties: false }
)
export type ChatMessageListQuery = Static<typeof ChatMessageListQuery>

/** A page of messages, oldest first; `nextCursor` is the `before` for the older page (null at the start). */
export const ChatMessageList = Type.Object({
  items: Type.Array(ChatMessage),
  nextCursor: Type.Union([ChatMessageId, Type.Null()])
})
export type ChatMessageList = Static<typeof ChatMessageList>

/** JSON merge patch (RFC 7386) on the session's context: `null` removes a key. */
export const ChatContextPatch = Type.Record(Type.String({ maxLength: 200 }), Type.Unknown(), {
  description: 'Merged into the context; null removes a key; at most 16 KiB once merged'
})
export type ChatContextPatch = Static<typeof ChatContextPatch>
export const CHAT_CONTEXT_MAX_BYTES = 16 * 1024

export const ChatRatingBody = Type.Object({ rating: Type.Integer({ minimum: 1, maximum: 5 }) }, { additionalProperties: false })
export type ChatRatingBody = Static<typeof ChatRatingBody>

export const ChatCleanupBody = Type.Object(
  { batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })) },
  { additionalProperties: false }
)
export type ChatCleanupBody = Static<typeof ChatCleanupBody>

export const ChatCleanupReply = Type.Object({
  /** Active sessions past expiresAt that were closed. */
  expired: Type.Integer({ minimum: 0 }),
  /** Closed sessions past the retention period that were deleted, with their messages. */
  removedSessions: Type.Integer({ minimum: 0 }),
  removedMessages: Type.Integer({ minimum: 0 }),
  batches: Type.Integer({ minimum: 0 })
})
export type ChatCleanupReply = Static<typeof ChatCleanupReply>

export const ChatRestErrorCodes = ['SESSION_NOT_FOUND', 'CONTEXT_TOO_LARGE', 'INVALID_CURSOR'] as const satisfies readonly ErrorCode[]

// ---------------------------------------------------------------------------------------------
// Events (JetStream, through the outbox)
// ---------------------------------------------------------------------------------------------

export const ChatEventSubjects = {
  sessionOpened: 'chat.events.session.opened',
  sessionClosed: 'chat.events.session.closed',
  messageCreated: 'chat.events.message.created'
} as const

export const ChatSessionOpenedData = Type.Object({
  chatSessionId: ChatSessionId,
  userId: Type.Union([Type.String(), Type.Null()]),
  userType: ChatUserType,
  /** The login session (`sid` claim) of the connection that opened it, when its token had one. */
  loginSessionId: Type.Optional(Type.String())
})
export type ChatSessionOpenedData = Static<typeof ChatSessionOpenedData>

export const ChatSessionClosedData = Type.Object({
  chatSessionId: ChatSessionId,
  userId: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.Literal('user'), Type.Literal('expired')]),
  closedAt: Type.String({ format: 'date-time' })
})
export type ChatSessionClosedData = Static<typeof ChatSessionClosedData>

export const ChatMessageCreatedData = Type.Object({
  chatSessionId: ChatSessionId,
  messageId: ChatMessageId,
  seq: Type.Integer({ minimum: 1 }),
  sender: ChatSender,
  /** The session's user (null when anonymous); for assistant replies, the user who was answered. */
  userId: Type.Union([Type.String(), Type.Null()]),
  userType: ChatUserType,
  /**
   * The login session (`sid` claim) of the connection that sent the message (for assistant replies:
   * that received the answer), when its token had one. Count interactions with `sender === 'user'`.
   */
  loginSessionId: Type.Optional(Type.String()),
  contentLength: Type.Integer({ minimum: 0 }),
  createdAt: Type.String({ format: 'date-time' })
})
export type ChatMessageCreatedData = Static<typeof ChatMessageCreatedData>

export const ChatSessionOpened = EventEnvelope(ChatEventSubjects.sessionOpened, ChatSessionOpenedData)
export const ChatSessionClosed = EventEnvelope(ChatEventSubjects.sessionClosed, ChatSessionClosedData)
export const ChatMessageCreated = EventEnvelope(ChatEventSubjects.messageCreated, ChatMessageCreatedData)
export type ChatSessionOpened = Static<typeof ChatSessionOpened>
export type ChatSessionClosed = Static<typeof ChatSessionClosed>
export type ChatMessageCreated = Static<typeof ChatMessageCreated>

// ---------------------------------------------------------------------------------------------
// Public routes (through the gateway)
// ---------------------------------------------------------------------------------------------

const authErrors = { 400: e(['VALIDATION_ERROR']), 401: e(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED']), 403: e(['FORBIDDEN']) }
const notFound = { 404: e(['SESSION_NOT_FOUND'], "also for another user's session") }

/** The chat API as published through the gateway. */
export const ChatRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/ws/chat',
    tag: 'chat',
    auth: 'none',
    summary:
      'WebSocket upgrade. Token in ?token= or Sec-WebSocket-Protocol (anonymous when allowed); frames: ' +
      'session_init, message, typing, session_close → welcome, session, message, typing, session_closed, error',
    responses: { 101: { description: 'Switching Protocols; closes 4401 on a bad token' } }
  },
  {
    method: 'GET',
    path: '/api/v1/chat/sessions',
    tag: 'chat',
    auth: 'user',
    summary: 'List my chat sessions, newest first (admin: ?userId=)',
    querystring: ChatSessionListQuery,
    responses: { 200: { description: 'A page of sessions', schema: ChatSessionList }, ...authErrors, 400: e(['VALIDATION_ERROR', 'INVALID_CURSOR']) }
  },
  {
    method: 'GET',
    path: '/api/v1/chat/sessions/{id}/messages',
    tag: 'chat',
    auth: 'user',
    summary: "A page of a session's messages, oldest first; page back with ?before=<nextCursor>",
    params: ChatSessionParams,
    querystring: ChatMessageListQuery,
    responses: { 200: { description: 'A page of messages', schema: ChatMessageList }, ...notFound, ...authErrors }
  },
  {
    method: 'PATCH',
    path: '/api/v1/chat/sessions/{id}/context',
    tag: 'chat',
    auth: 'user',
    summary: 'Merge into the session context (JSON merge patch)',
    params: ChatSessionParams,
    body: ChatContextPatch,
    responses: {
      200: { description: 'The updated session', schema: ChatSession },
      ...notFound,
      422: e(['CONTEXT_TOO_LARGE']),
      ...authErrors
    }
  },
  {
    method: 'POST',
    path: '/api/v1/chat/sessions/{id}/close',
    tag: 'chat',
    auth: 'user',
    summary: 'Close the session (idempotent); live connections get session_closed',
    params: ChatSessionParams,
    responses: { 200: { description: 'The closed session', schema: ChatSession }, ...notFound, ...authErrors }
  },
  {
    method: 'PUT',
    path: '/api/v1/chat/sessions/{id}/rating',
    tag: 'chat',
    auth: 'user',
    summary: 'Rate the session 1..5',
    params: ChatSessionParams,
    body: ChatRatingBody,
    responses: { 200: { description: 'The rated session', schema: ChatSession }, ...notFound, ...authErrors }
  }
]
