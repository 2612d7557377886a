import { defineError } from '@platform/kit'

/** The spec's replies (error titles and messages) for the session guard. */
export const SessionRequiredError = defineError('SESSION_REQUIRED', 'This token carries no login session (sid claim); log in again')
export const SessionEndedError = defineError('SESSION_ENDED', 'Your session has ended (%s). Please log in again.')
const SecurityViolationError = defineError('SECURITY_VIOLATION', 'Your session has been terminated due to security concerns. Please log in again.')
const ConcurrentSessionLimitError = defineError('CONCURRENT_SESSION_LIMIT', 'You have too many active sessions. Please try again.')
export const SessionServiceUnavailableError = defineError(
  'SESSION_SERVICE_UNAVAILABLE',
  'Login sessions cannot be checked right now; retry after the time in Retry-After'
)

export const securityViolation = (): Error => Object.assign(new SecurityViolationError(), { title: 'Security violation detected' })
export const concurrentLimit = (): Error => Object.assign(new ConcurrentSessionLimitError(), { title: 'Too many active sessions' })
