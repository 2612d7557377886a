import createError from '@fastify/error'

/** The spec's replies (error titles and messages) for the session guard. */
export const SessionRequiredError = createError('SESSION_REQUIRED', 'This token carries no login session (sid claim); log in again', 401)
export const SessionEndedError = createError('SESSION_ENDED', 'Your session has ended (%s). Please log in again.', 401)
const SecurityViolationError = createError(
  'SECURITY_VIOLATION',
  'Your session has been terminated due to security concerns. Please log in again.',
  403
)
const ConcurrentSessionLimitError = createError('CONCURRENT_SESSION_LIMIT', 'You have too many active sessions. Please try again.', 429)
export const SessionServiceUnavailableError = createError(
  'SESSION_SERVICE_UNAVAILABLE',
  'Login sessions cannot be checked right now; retry after the time in Retry-After',
  503
)

export const securityViolation = (): Error => Object.assign(new SecurityViolationError(), { title: 'Security violation detected' })
export const concurrentLimit = (): Error => Object.assign(new ConcurrentSessionLimitError(), { title: 'Too many active sessions' })
