import createError from '@fastify/error'

export const TaskSessionNotFoundError = createError('TASK_SESSION_NOT_FOUND', 'No session for task "%s"', 404)
export const InvalidTaskIdError = createError(
  'INVALID_TASK_ID',
  'The task id must be 1-128 letters, digits or _ . : -',
  400
)
export const InvalidShortIdError = createError(
  'INVALID_SHORT_ID',
  'The short id must be 1-64 letters, digits or _ . : -',
  400
)
export const InvalidEventEnvelopeError = createError('INVALID_EVENT_ENVELOPE', 'The event is not a valid CloudEvents 1.0 event: %s', 400)
export const InvalidEventJsonError = createError('INVALID_JSON', 'The event is not valid JSON: %s', 400)
export const UnsupportedEventMediaTypeError = createError('UNSUPPORTED_MEDIA_TYPE', '%s', 415)
export const UnknownEventTypeError = createError('UNKNOWN_EVENT_TYPE', 'This event type is not a task lifecycle event: %s', 400)
export const InvalidEventDataError = createError('INVALID_EVENT_DATA', 'The event data does not match its type: %s', 400)
