import { Type, type Static } from 'typebox'

/** One code of the catalogue: its HTTP status and what it tells the client. */
export interface ErrorEntry {
  status: number
  /** What happened and what the client should do, in one line. */
  meaning: string
  /** Set when the status is not always `status`: which other statuses the code comes with. */
  statusNote?: string
}

/**
 * Every code a service or the gateway answers over HTTP, each with its status and meaning
 * (docs/errors.md, tested against it). Factories take their status from here (`defineError` in kit).
 */
export const ErrorCatalogue = {
  // Refused before any route runs: Node's HTTP parser, Fastify's router and body parsers.
  BAD_REQUEST: {
    status: 400,
    meaning: 'The request is not valid HTTP; fix the client',
    statusNote: 'another 4xx that a library answered without a code of ours'
  },
  BAD_URL: { status: 400, meaning: 'The path has a malformed percent-encoding; encode it properly' },
  REQUEST_TIMEOUT: { status: 408, meaning: 'The request did not arrive in time; send it again, faster' },
  URI_TOO_LONG: { status: 414, meaning: 'The path and query (or one path segment) are too long; shorten them' },
  HEADERS_TOO_LARGE: { status: 431, meaning: 'The request line and headers are too large; send fewer or smaller headers' },
  INVALID_JSON: { status: 400, meaning: 'The body (or the event) is not valid JSON; fix the body' },
  INVALID_CONTENT_LENGTH: { status: 400, meaning: 'Content-Length does not match the body; fix the client' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, meaning: 'The body is not in a media type this route reads; send application/json' },
  PAYLOAD_TOO_LARGE: { status: 413, meaning: "The body is larger than the gateway's or the service's limit; send a smaller one" },
  VALIDATION_ERROR: { status: 400, meaning: 'A parameter, query or body field is invalid (see details); fix it' },
  NOT_FOUND: { status: 404, meaning: 'No such route (or a path with . or .. segments); check the method and path' },
  INVALID_CURSOR: { status: 400, meaning: 'The cursor is not one this API returned; list again without it' },
  // Identity and roles.
  TOKEN_MISSING: { status: 401, meaning: 'No bearer token was sent; send Authorization: Bearer <JWT>' },
  TOKEN_INVALID: { status: 401, meaning: 'The token is malformed, badly signed or for another audience; obtain a new one' },
  TOKEN_EXPIRED: { status: 401, meaning: 'The token has expired; obtain a new one' },
  FORBIDDEN: { status: 403, meaning: 'A role is missing, or the address may not see this; do not retry' },
  // Capacity and dependencies.
  RATE_LIMITED: { status: 429, meaning: 'Too many requests; retry after Retry-After seconds' },
  DATABASE_UNAVAILABLE: { status: 503, meaning: 'Postgres is unavailable, nothing was written; retry after Retry-After seconds' },
  SERVICE_UNAVAILABLE: { status: 503, meaning: 'The instance is shutting down or a dependency is down; retry later' },
  INTERNAL_ERROR: { status: 500, meaning: 'A fault on our side; retry later or report the requestId' },
  // The gateway in front of the services.
  UPSTREAM_ERROR: { status: 502, meaning: 'The service could not be reached or broke the connection; retry later' },
  UPSTREAM_TIMEOUT: { status: 504, meaning: 'The service did not answer within the request deadline; retry later' },
  CIRCUIT_OPEN: { status: 503, meaning: 'The service failed repeatedly and is not called for now; retry after Retry-After seconds' },
  UPSTREAM_REFUSED: {
    status: 400,
    meaning: 'The service refused the request and closed the connection before its answer was whole; fix the request',
    statusNote: 'the 4xx the service answered'
  },
  CLIENT_ABORTED: { status: 400, meaning: 'The client closed the request before its body was complete; only the logs see it' },
  // The login-session guard (gateway) and login sessions (sessions).
  SESSION_REQUIRED: { status: 401, meaning: 'The token carries no login session (sid claim); log in again' },
  SESSION_ENDED: { status: 401, meaning: 'The login session has ended (logout, revoked, expired, security); log in again' },
  SECURITY_VIOLATION: { status: 403, meaning: 'The login session was ended for a security reason; log in again' },
  CONCURRENT_SESSION_LIMIT: { status: 429, meaning: 'Too many active login sessions; end one and retry' },
  SESSION_SERVICE_UNAVAILABLE: { status: 503, meaning: 'Login sessions cannot be checked now; retry after Retry-After seconds' },
  LOGIN_SESSION_NOT_FOUND: { status: 404, meaning: 'No such login session among yours; list them again' },
  OTHERS_REQUIRED: { status: 400, meaning: 'Ending every session but the current one needs ?others=true; add it' },
  // Named sessions (sessions) and chat sessions (chat).
  NO_ACTIVE_SESSION: { status: 404, meaning: 'You have no active session; create or activate one' },
  SESSION_NOT_FOUND: { status: 404, meaning: "No such session, or it is another user's; list yours again" },
  DUPLICATE_SESSION_TITLE: { status: 409, meaning: 'A session with this title already exists; pick another title' },
  ACTIVE_SESSION_DELETION: { status: 400, meaning: 'The active session cannot be deleted; activate another first' },
  INVALID_TITLE: { status: 422, meaning: 'The title is blank, too long or has control characters; fix it' },
  CONTEXT_TOO_LARGE: { status: 422, meaning: 'The merged chat context would exceed its limit; remove keys with null' },
  // Task sessions.
  TASK_SESSION_NOT_FOUND: { status: 404, meaning: 'No session for this task (or not yours); check the task id' },
  INVALID_TASK_ID: { status: 400, meaning: 'The task id is not 1-128 letters, digits or _ . : -; fix it' },
  INVALID_SHORT_ID: { status: 400, meaning: 'The short id is not 1-64 letters, digits or _ . : -; fix it' },
  INVALID_EVENT_ENVELOPE: { status: 400, meaning: 'The event is not a valid CloudEvents 1.0 event (the message names the attribute); fix it' },
  UNKNOWN_EVENT_TYPE: { status: 400, meaning: 'The event type is not a task lifecycle event; send one of tasks.*' },
  INVALID_EVENT_DATA: { status: 400, meaning: 'The event data does not match its type; fix the data' },
  // Cleanup (admin API of the cleanup worker).
  UNKNOWN_CLEANUP_KIND: { status: 400, meaning: 'No such cleanup kind; use one of the listed kinds' },
  CLEANUP_AGE_REQUIRED: { status: 400, meaning: 'This kind has no configured age; pass olderThanSeconds' },
  CLEANUP_AGE_NOT_SUPPORTED: { status: 400, meaning: "This kind uses its owning service's ages; leave out olderThanSeconds" },
  CLEANUP_RUN_NOT_FOUND: { status: 404, meaning: 'No such cleanup run; list the runs again' },
  QUEUE_UNAVAILABLE: { status: 503, meaning: 'The cleanup queue (Redis) is unavailable; retry after Retry-After seconds' }
} as const satisfies Record<string, ErrorEntry>

export type ErrorCode = keyof typeof ErrorCatalogue

/** Whether a value (an error's `code`, of any origin) is a catalogue code. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCatalogue, code)
}

/** The catalogue's codes, in its order. */
export const ErrorCodes = Object.keys(ErrorCatalogue).filter(isErrorCode)

/** The one error shape every service and the gateway answer with (docs/architecture.md, Failure behaviour). */
export const ErrorReply = Type.Object(
  {
    error: Type.String({ description: 'HTTP status title, e.g. "Not Found"' }),
    message: Type.String({ description: 'What happened and what to do' }),
    code: Type.Unsafe<ErrorCode>({ type: 'string', enum: ErrorCodes, description: 'Stable machine-readable code (docs/errors.md)' }),
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

export interface ErrorResponse {
  description: string
  schema: typeof ErrorReply
  /** The codes this response may carry: the gateway's OpenAPI lists them (x-error-codes). */
  codes: readonly ErrorCode[]
}

/** An error response of a route contract: the codes it may carry, then when (the OpenAPI description). */
export function errorResponse(codes: readonly ErrorCode[], note?: string): ErrorResponse {
  return { description: note ? `${codes.join(' / ')}: ${note}` : codes.join(' / '), schema: ErrorReply, codes }
}

/** Codes shared by every service. Service-specific codes are listed beside their API contract. */
export const CommonErrorCodes = [
  'VALIDATION_ERROR',
  'INVALID_JSON',
  'INVALID_CONTENT_LENGTH',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'NOT_FOUND',
  'BAD_REQUEST',
  'REQUEST_TIMEOUT',
  'HEADERS_TOO_LARGE',
  'BAD_URL',
  'URI_TOO_LONG',
  'UPSTREAM_REFUSED',
  'TOKEN_MISSING',
  'TOKEN_INVALID',
  'TOKEN_EXPIRED',
  'FORBIDDEN',
  'RATE_LIMITED',
  'DATABASE_UNAVAILABLE',
  'SERVICE_UNAVAILABLE',
  'INTERNAL_ERROR'
] as const satisfies readonly ErrorCode[]
export type CommonErrorCode = (typeof CommonErrorCodes)[number]
