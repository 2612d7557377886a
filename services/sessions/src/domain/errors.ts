import createError from '@fastify/error'

export const NoActiveSessionError = createError('NO_ACTIVE_SESSION', 'You have no active session: create one or activate one by title', 404)
export const SessionNotFoundError = createError('SESSION_NOT_FOUND', 'No session titled "%s"', 404)
export const DuplicateTitleError = createError('DUPLICATE_SESSION_TITLE', 'A session titled "%s" already exists; pick another title', 409)
export const ActiveSessionDeletionError = createError(
  'ACTIVE_SESSION_DELETION',
  'Session "%s" is active and cannot be deleted: activate another session first',
  400
)
export const InvalidTitleError = createError('INVALID_TITLE', '%s', 422)
export const LoginSessionNotFoundError = createError('LOGIN_SESSION_NOT_FOUND', 'No login session %s among yours', 404)
export const ConcurrentSessionLimitError = createError(
  'CONCURRENT_SESSION_LIMIT',
  'You have too many active sessions. Please try again.',
  429
)
export const SessionRequiredError = createError('SESSION_REQUIRED', 'This token carries no login session (sid claim)', 401)
export const OthersRequiredError = createError('OTHERS_REQUIRED', 'Pass ?others=true to end every session but the current one', 400)
