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
export const InvalidCursorError = createError('INVALID_CURSOR', 'The cursor is not one this API returned; start again without it', 400)
