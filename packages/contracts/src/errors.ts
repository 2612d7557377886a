import { Type, type Static } from 'typebox'

/** The one error shape every service and the gateway answer with (docs/architecture.md, Failure behaviour). */
export const ErrorReply = Type.Object(
  {
    error: Type.String({ description: 'HTTP status title, e.g. "Not Found"' }),
    message: Type.String({ description: 'What happened and what to do' }),
    code: Type.String({ pattern: '^[A-Z][A-Z0-9_]*$', description: 'Stable machine-readable code' }),
    requestId: Type.String(),
    retryAfter: Type.Optional(Type.Integer({ minimum: 0, description: 'Seconds before a retry can succeed' })),
    details: Type.Optional(
      Type.Array(Type.Object({ path: Type.String(), message: Type.String() }), {
        description: 'Validation failures, one per offending field'
      })
    )
  },
  { $id: 'ErrorReply', additionalProperties: false }
)
export type ErrorReply = Static<typeof ErrorReply>

/** Codes shared by every service. Service-specific codes live beside their API contract. */
export const CommonErrorCodes = [
  'VALIDATION_ERROR',
  'INVALID_JSON',
  'INVALID_CONTENT_LENGTH',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'NOT_FOUND',
  /** Refused before any route runs: by Node's HTTP parser (400, 408, 431) or Fastify's router (400, 414). */
  'BAD_REQUEST',
  'REQUEST_TIMEOUT',
  'HEADERS_TOO_LARGE',
  'BAD_URL',
  'URI_TOO_LONG',
  /** The gateway: a service answered 4xx (its status is kept) and broke the connection before its answer was whole. */
  'UPSTREAM_REFUSED',
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'DATABASE_UNAVAILABLE',
  'SERVICE_UNAVAILABLE',
  'INTERNAL_ERROR'
] as const
export type CommonErrorCode = (typeof CommonErrorCodes)[number]
