import { defineError } from '@platform/kit'

export const NoActiveSessionError = defineError('NO_ACTIVE_SESSION', 'You have no active session: create one or activate one by title')
export const SessionNotFoundError = defineError('SESSION_NOT_FOUND', 'No session titled "%s"')
export const DuplicateTitleError = defineError('DUPLICATE_SESSION_TITLE', 'A session titled "%s" already exists; pick another title')
export const ActiveSessionDeletionError = defineError(
  'ACTIVE_SESSION_DELETION',
  'Session "%s" is active and cannot be deleted: activate another session first'
)
export const InvalidTitleError = defineError('INVALID_TITLE', '%s')
export const LoginSessionNotFoundError = defineError('LOGIN_SESSION_NOT_FOUND', 'No login session %s among yours')
export const ConcurrentSessionLimitError = defineError('CONCURRENT_SESSION_LIMIT', 'You have too many active sessions. Please try again.')
export const SessionRequiredError = defineError('SESSION_REQUIRED', 'This token carries no login session (sid claim)')
export const OthersRequiredError = defineError('OTHERS_REQUIRED', 'Pass ?others=true to end every session but the current one')
