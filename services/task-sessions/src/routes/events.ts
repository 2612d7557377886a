import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ErrorReply, TaskEventAccepted, TaskEventDataSchemas } from '@platform/contracts'
import { eventValidator } from '@platform/kit'
import { InvalidEventDataError, InvalidEventEnvelopeError, UnknownEventTypeError } from '../domain/errors.js'

const REFUSALS = {
  INVALID_JSON: InvalidEventEnvelopeError,
  INVALID_ENVELOPE: InvalidEventEnvelopeError,
  UNKNOWN_TYPE: UnknownEventTypeError,
  INVALID_DATA: InvalidEventDataError
} as const

/** HTTP intake for producers that cannot publish to NATS: the same checks and the same handling. */
export const eventRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const validator = eventValidator(TaskEventDataSchemas)
  // Envelopes are JSON only: anything else is 415, as everywhere else.
  fastify.removeContentTypeParser('text/plain')

  fastify.post(
    '/api/v1/task-sessions/events',
    {
      onRequest: fastify.requireRole('service'),
      schema: {
        tags: ['task sessions'],
        summary: 'Apply one task lifecycle event (service role)',
        // Checked by the same validator as NATS messages, for the same reasons and codes.
        body: Type.Unknown(),
        response: { 200: TaskEventAccepted, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 415: ErrorReply, 503: ErrorReply }
      }
    },
    async (request) => {
      const result = validator.check(request.body)
      if (!result.ok) throw new REFUSALS[result.reason](result.detail)
      const changes = await fastify.taskStore.apply([result.event])
      return { id: result.event.id, type: result.event.type, changes }
    }
  )
}
