import createError from '@fastify/error'

export const ChatSessionNotFoundError = createError('SESSION_NOT_FOUND', 'No chat session %s: it does not exist or is not yours', 404)
export const ContextTooLargeError = createError(
  'CONTEXT_TOO_LARGE',
  'The merged context would be %d bytes; at most %d are allowed: remove keys with null',
  422
)
