import createError from '@fastify/error'

/** Errors shared by every service; each carries its code and status (docs/architecture.md, Failure behaviour). */
export const TokenMissingError = createError('TOKEN_MISSING', 'A bearer token is required: send Authorization: Bearer <JWT>', 401)
export const TokenInvalidError = createError('TOKEN_INVALID', 'The token is not valid: %s', 401)
export const TokenExpiredError = createError('TOKEN_EXPIRED', 'The token has expired: obtain a new one', 401)
export const ForbiddenError = createError('FORBIDDEN', '%s', 403)
export const ValidationError = createError('VALIDATION_ERROR', '%s', 400)
export const DatabaseUnavailableError = createError(
  'DATABASE_UNAVAILABLE',
  'The database is unavailable; retry after the time in Retry-After',
  503
)
export const ServiceUnavailableError = createError('SERVICE_UNAVAILABLE', '%s', 503)
