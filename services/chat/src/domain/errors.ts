import { defineError } from '@platform/kit'

export const ChatSessionNotFoundError = defineError('SESSION_NOT_FOUND', 'No chat session %s: it does not exist or is not yours')
export const ContextTooLargeError = defineError(
  'CONTEXT_TOO_LARGE',
  'The merged context would be %d bytes; at most %d are allowed: remove keys with null'
)
