import createError from '@fastify/error'
import { ErrorCatalogue, type ErrorCode } from '@platform/contracts'

/**
 * An @fastify/error factory for a catalogue code (packages/contracts errors.ts): the status is the
 * catalogue's, written once. `message` may hold %s placeholders filled by the constructor's arguments.
 */
export function defineError<C extends ErrorCode>(code: C, message: string) {
  return createError(code, message, ErrorCatalogue[code].status)
}

/** Errors shared by every service (docs/errors.md). */
export const TokenMissingError = defineError('TOKEN_MISSING', 'A bearer token is required: send Authorization: Bearer <JWT>')
export const TokenInvalidError = defineError('TOKEN_INVALID', 'The token is not valid: %s')
export const TokenExpiredError = defineError('TOKEN_EXPIRED', 'The token has expired: obtain a new one')
export const ForbiddenError = defineError('FORBIDDEN', '%s')
export const ValidationError = defineError('VALIDATION_ERROR', '%s')
export const DatabaseUnavailableError = defineError('DATABASE_UNAVAILABLE', 'The database is unavailable; retry after the time in Retry-After')
export const ServiceUnavailableError = defineError('SERVICE_UNAVAILABLE', '%s')

/** An error that also tells the client when to retry: the error handler sends it as Retry-After (whole seconds, ≥ 1). */
export function withRetryAfter<E extends Error>(err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: Math.max(1, Math.ceil(seconds)) })
}
export const UriTooLongError = defineError('URI_TOO_LONG', 'The path and query are longer than the %s characters accepted')
