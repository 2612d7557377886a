import { defineError } from '@platform/kit'

export const TaskSessionNotFoundError = defineError('TASK_SESSION_NOT_FOUND', 'No session for task "%s"')
export const InvalidTaskIdError = defineError('INVALID_TASK_ID', 'The task id must be 1-128 letters, digits or _ . : -')
export const InvalidShortIdError = defineError('INVALID_SHORT_ID', 'The short id must be 1-64 letters, digits or _ . : -')
export const InvalidEventEnvelopeError = defineError('INVALID_EVENT_ENVELOPE', 'The event is not a valid CloudEvents 1.0 event: %s')
export const InvalidEventJsonError = defineError('INVALID_JSON', 'The event is not valid JSON: %s')
export const UnsupportedEventMediaTypeError = defineError('UNSUPPORTED_MEDIA_TYPE', '%s')
export const UnknownEventTypeError = defineError('UNKNOWN_EVENT_TYPE', 'This event type is not a task lifecycle event: %s')
export const InvalidEventDataError = defineError('INVALID_EVENT_DATA', 'The event data does not match its type: %s')
