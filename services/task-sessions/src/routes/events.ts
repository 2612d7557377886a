import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ErrorReply, TaskEventAccepted, TaskEventDataSchemas } from '@platform/contracts'
import { eventValidator, isJsonContentType, messageKind } from '@platform/kit'
import {
  InvalidEventDataError,
  InvalidEventEnvelopeError,
  InvalidEventJsonError,
  UnknownEventTypeError,
  UnsupportedEventMediaTypeError
} from '../domain/errors.js'

const REFUSALS = {
  INVALID_JSON: InvalidEventJsonError,
  INVALID_ENVELOPE: InvalidEventEnvelopeError,
  UNKNOWN_TYPE: UnknownEventTypeError,
  INVALID_DATA: InvalidEventDataError
} as const

/**
 * HTTP intake for producers that cannot publish to NATS: the same checks and the same handling, in
 * either content mode of the CloudEvents HTTP binding (structured `application/cloudevents+json`, or
 * binary with `ce-` headers), and a plain JSON envelope as before.
 */
export const eventRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const validator = eventValidator(TaskEventDataSchemas)
  // The kit decodes the raw body: in binary mode it is the event's data, whatever its content type.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body))

  fastify.post(
    '/api/v1/task-sessions/events',
    {
      onRequest: fastify.requireRole('service'),
      schema: {
        tags: ['task sessions'],
        summary: 'Apply one task lifecycle event (service role)',
        // Checked by the same decoder as NATS messages, for the same reasons and codes.
        body: Type.Unknown(),
        response: { 200: TaskEventAccepted, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 415: ErrorReply, 503: ErrorReply }
      }
    },
    async (request) => {
      const kind = messageKind(request.headers)
      const contentType = request.headers['content-type']
      if (kind === 'batch' || kind === 'unsupported') {
        throw new UnsupportedEventMediaTypeError(
          `Content-Type ${contentType} is not supported: send one event as application/cloudevents+json, or in binary mode with ce- headers`
        )
      }
      // Neither mode's markers: the body must be the JSON envelope itself, as it always could be.
      if (kind === 'plain' && contentType !== undefined && !isJsonContentType(contentType)) {
        throw new UnsupportedEventMediaTypeError(
          `Content-Type ${contentType} is not an event: send application/cloudevents+json, application/json, or binary mode with ce- headers`
        )
      }
      const body = Buffer.isBuffer(request.body) ? request.body : undefined
      const result = validator.decode({ headers: request.headers, body })
      if (!result.ok) throw new REFUSALS[result.reason](result.detail)
      const changes = await fastify.taskStore.apply([result.event])
      return { id: result.event.id, type: result.event.type, changes }
    }
  )
}
