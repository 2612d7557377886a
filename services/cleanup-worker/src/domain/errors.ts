import { CleanupKinds } from '@platform/contracts'
import { defineError } from '@platform/kit'

export const UnknownCleanupKindError = defineError('UNKNOWN_CLEANUP_KIND', `Unknown cleanup kind "%s": use one of ${CleanupKinds.join(', ')}`)
export const CleanupAgeRequiredError = defineError(
  'CLEANUP_AGE_REQUIRED',
  'named_sessions has no configured age (NAMED_SESSION_MAX_AGE_DAYS): pass olderThanSeconds'
)
export const CleanupAgeNotSupportedError = defineError(
  'CLEANUP_AGE_NOT_SUPPORTED',
  "%s uses its owning service's own ages: leave out olderThanSeconds"
)
export const CleanupRunNotFoundError = defineError('CLEANUP_RUN_NOT_FOUND', 'No cleanup run %s')
export const QueueUnavailableError = defineError('QUEUE_UNAVAILABLE', 'The cleanup queue (Redis) is unavailable; retry after the time in Retry-After')
