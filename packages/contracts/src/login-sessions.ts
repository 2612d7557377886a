import { Type, type Static } from 'typebox'
import { EventEnvelope } from './events.js'
import { UserId } from './common.js'
import { errorResponse as e, type ErrorCode } from './errors.js'
import type { RouteContract } from './routes.js'

/** A login session id: the JWT's `sid` claim. */
export const LoginSessionId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:-]+$' })

export const DeviceTypes = ['desktop', 'mobile', 'tablet', 'bot', 'unknown'] as const
export const EndReasons = ['logout', 'revoked', 'expired', 'inactive', 'limit', 'security'] as const
export type EndReason = (typeof EndReasons)[number]
export const ViolationReasons = ['user_agent_changed', 'request_rate'] as const
export type ViolationReason = (typeof ViolationReasons)[number]
export const OverflowPolicies = ['end_oldest', 'deny_new'] as const

/** A string enum whose static type is the union of its values. */
const literals = <T extends readonly string[]>(values: T) => Type.Unsafe<T[number]>(Type.String({ enum: [...values] }))
export const EndReason = literals(EndReasons)
export const ViolationReason = literals(ViolationReasons)

export const LoginSession = Type.Object({
  id: Type.String(),
  userId: Type.String(),
  ipAddress: Type.String(),
  lastIpAddress: Type.String(),
  ipChanges: Type.Integer(),
  userAgent: Type.String(),
  deviceType: literals(DeviceTypes),
  browser: Type.String(),
  os: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastSeenAt: Type.String({ format: 'date-time' }),
  requestCount: Type.Integer(),
  chatInteractions: Type.Integer(),
  endedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  endReason: Type.Union([EndReason, Type.Null()]),
  /** True for the session of the token that asked. */
  current: Type.Boolean()
})
export type LoginSession = Static<typeof LoginSession>

export const LoginSessionListQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    userId: Type.Optional(UserId),
    /** active (default), ended or all */
    state: Type.Optional(literals(['active', 'ended', 'all'] as const))
  },
  { additionalProperties: false }
)
export type LoginSessionListQuery = Static<typeof LoginSessionListQuery>

export const LoginSessionList = Type.Object({ items: Type.Array(LoginSession), nextCursor: Type.Union([Type.String(), Type.Null()]) })
export type LoginSessionList = Static<typeof LoginSessionList>

export const LoginSessionParams = Type.Object({ id: LoginSessionId }, { additionalProperties: false })
export const RevokeQuery = Type.Object({ others: Type.Optional(Type.Boolean()) }, { additionalProperties: false })
export const RevokeReply = Type.Object({ ended: Type.Integer() })

export const LoginSessionMetrics = Type.Object({
  active: Type.Integer(),
  started: Type.Integer(),
  endedByReason: Type.Record(Type.String(), Type.Integer()),
  violationsByReason: Type.Record(Type.String(), Type.Integer()),
  averageDurationSeconds: Type.Number(),
  averageRequestsPerSession: Type.Number(),
  averageChatInteractionsPerSession: Type.Number()
})
export type LoginSessionMetrics = Static<typeof LoginSessionMetrics>

/** What the gateway's guard knows of a login session (Redis hash, or the sessions service when Redis is down). */
export const LoginSessionState = Type.Object({
  sid: Type.String(),
  userId: Type.String(),
  userAgent: Type.String(),
  ip: Type.String(),
  createdAt: Type.Integer({ description: 'epoch ms' }),
  lastSeenAt: Type.Integer({ description: 'epoch ms' }),
  endReason: Type.Union([EndReason, Type.Null()])
})
export type LoginSessionState = Static<typeof LoginSessionState>

/** Internal (gateway → sessions): resolve a sid on first sight or when Redis lost it. */
export const ResolveLoginSessionBody = Type.Object(
  { sid: LoginSessionId, userId: UserId, ip: Type.String({ maxLength: 64 }), userAgent: Type.String({ maxLength: 1024 }) },
  { additionalProperties: false }
)
export type ResolveLoginSessionBody = Static<typeof ResolveLoginSessionBody>

export const EndLoginSessionBody = Type.Object(
  {
    reason: EndReason,
    violation: Type.Optional(ViolationReason),
    detail: Type.Optional(Type.String({ maxLength: 500 }))
  },
  { additionalProperties: false }
)
export type EndLoginSessionBody = Static<typeof EndLoginSessionBody>

/** Internal: activity the guard batched (at most once per 30 s per session, or at once on an IP change). */
export const LoginActivityBody = Type.Object(
  {
    items: Type.Array(
      Type.Object(
        {
          sid: LoginSessionId,
          lastSeenAt: Type.Integer({ minimum: 0 }),
          requests: Type.Integer({ minimum: 0 }),
          ip: Type.Optional(Type.String({ maxLength: 64 }))
        },
        { additionalProperties: false }
      ),
      { maxItems: 5000 }
    )
  },
  { additionalProperties: false }
)
export type LoginActivityBody = Static<typeof LoginActivityBody>

/** Body of every service's POST /internal/cleanup (called by the cleanup worker). */
export const CleanupBody = Type.Object(
  {
    olderThanSeconds: Type.Optional(Type.Integer({ minimum: 0 })),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000 }))
  },
  { additionalProperties: false }
)
export type CleanupBody = Static<typeof CleanupBody>

export const CleanupReply = Type.Object({
  removed: Type.Integer(),
  batches: Type.Integer(),
  errors: Type.Integer(),
  durationMs: Type.Integer()
})
export type CleanupReply = Static<typeof CleanupReply>

/** Redis layout shared by the gateway's guard (reads, counts) and the sessions service (writes state). */
export const loginStateKey = (sid: string) => `login:state:${sid}`

export const LoginSessionSubjects = {
  started: 'sessions.login.started',
  ended: 'sessions.login.ended',
  violation: 'sessions.login.violation'
} as const

export const LoginStartedData = Type.Object({
  sid: Type.String(),
  userId: Type.String(),
  ipAddress: Type.String(),
  deviceType: Type.String(),
  browser: Type.String(),
  os: Type.String()
})
export const LoginEndedData = Type.Object({
  sid: Type.String(),
  userId: Type.String(),
  reason: EndReason,
  durationSeconds: Type.Number(),
  requestCount: Type.Integer()
})
export const LoginViolationData = Type.Object({
  sid: Type.String(),
  userId: Type.String(),
  reason: ViolationReason,
  detail: Type.String()
})
export const LoginSessionStarted = EventEnvelope(LoginSessionSubjects.started, LoginStartedData)
export const LoginSessionEnded = EventEnvelope(LoginSessionSubjects.ended, LoginEndedData)
export const LoginSessionViolation = EventEnvelope(LoginSessionSubjects.violation, LoginViolationData)

export const LoginSessionErrorCodes = [
  'SESSION_REQUIRED',
  'SESSION_ENDED',
  'SECURITY_VIOLATION',
  'CONCURRENT_SESSION_LIMIT',
  'LOGIN_SESSION_NOT_FOUND',
  'OTHERS_REQUIRED',
  'SESSION_SERVICE_UNAVAILABLE'
] as const satisfies readonly ErrorCode[]

const authErrors = {
  400: e(['VALIDATION_ERROR']),
  401: e(['TOKEN_MISSING', 'TOKEN_INVALID', 'TOKEN_EXPIRED', 'SESSION_REQUIRED', 'SESSION_ENDED']),
  403: e(['FORBIDDEN', 'SECURITY_VIOLATION'])
}

/** The login-session API as published through the gateway. */
export const LoginSessionRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/api/v1/login-sessions',
    tag: 'login sessions',
    auth: 'user',
    summary: 'My login sessions (devices), newest first; the current one has current: true (admin: ?userId=)',
    querystring: LoginSessionListQuery,
    responses: {
      200: { description: 'A page of login sessions', schema: LoginSessionList },
      ...authErrors,
      400: e(['VALIDATION_ERROR', 'INVALID_CURSOR'])
    }
  },
  {
    method: 'DELETE',
    path: '/api/v1/login-sessions/{id}',
    tag: 'login sessions',
    auth: 'user',
    summary: 'Revoke one of my login sessions',
    params: LoginSessionParams,
    responses: { 204: { description: 'Ended (reason revoked)' }, 404: e(['LOGIN_SESSION_NOT_FOUND']), ...authErrors }
  },
  {
    method: 'DELETE',
    path: '/api/v1/login-sessions',
    tag: 'login sessions',
    auth: 'user',
    summary: 'With ?others=true: end all my login sessions but the current one',
    querystring: RevokeQuery,
    responses: { 200: { description: 'How many ended', schema: RevokeReply }, ...authErrors, 400: e(['OTHERS_REQUIRED', 'VALIDATION_ERROR']) }
  },
  {
    method: 'POST',
    path: '/api/v1/login-sessions/logout',
    tag: 'login sessions',
    auth: 'user',
    summary: 'End the current login session (reason logout)',
    responses: { 204: { description: 'Logged out' }, ...authErrors }
  },
  {
    method: 'GET',
    path: '/api/v1/login-sessions/metrics',
    tag: 'login sessions',
    auth: 'admin',
    summary: 'Login-session metrics: active, started, ended and violations by reason, averages',
    responses: { 200: { description: 'Metrics', schema: LoginSessionMetrics }, ...authErrors }
  }
]
