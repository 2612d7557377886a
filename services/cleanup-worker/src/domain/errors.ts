import createError from '@fastify/error'
import { CleanupKinds } from '@platform/contracts'

export const UnknownCleanupKindError = createError(
  'UNKNOWN_CLEANUP_KIND',
  `Unknown cleanup kind "%s": use one of ${CleanupKinds.join(', ')}`,
  400
)
export const CleanupAgeRequiredError = createError(
  'CLEANUP_AGE_REQUIRED',
  'named_sessions has no configured age (NAMED_SESSION_MAX_AGE_DAYS): pass olderThanSeconds',
  400
)
export const CleanupAgeNotSupportedError = createError(
  'CLEANUP_AGE_NOT_SUPPORTED',
  '%s uses its owning service\'s own ages: leave out olderThanSeconds',
  400
)
export const CleanupRunNotFoundError = createError('CLEANUP_RUN_NOT_FOUND', 'No cleanup run %s', 404)
export const QueueUnavailableError = createError(
  'QUEUE_UNAVAILABLE',
  'The cleanup queue (Redis) is unavailable; retry after the time in Retry-After',
  503
)
