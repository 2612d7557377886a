import { STATUS_CODES } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { ErrorReply } from '@platform/contracts'
import { isDatabaseUnavailable } from '../db/errors.js'

const CODE = /^[A-Z][A-Z0-9_]*$/

/** Fastify's own codes for bad input, mapped onto ours. */
const FASTIFY_CODES: Record<string, { status: number; code: string; message: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'The body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'The body is empty but Content-Type is application/json' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Send the body as application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'INVALID_CONTENT_LENGTH', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'PAYLOAD_TOO_LARGE', message: 'The body is larger than this route accepts' }
}

export const DATABASE_RETRY_AFTER_SECONDS = 5

export function sendError(
  reply: FastifyReply,
  status: number,
  code: string,
  message: string,
  extra: Partial<ErrorReply> = {}
): FastifyReply {
  const body: ErrorReply = {
    error: STATUS_CODES[status] ?? 'Error',
    message,
    code,
    requestId: String(reply.request.id),
    ...extra
  }
  if (extra.retryAfter !== undefined) reply.header('retry-after', String(extra.retryAfter))
  return reply.code(status).type('application/json; charset=utf-8').send(body)
}

/** Optional fields an error may carry: `retryAfter` (seconds) and `title` (overrides the status title). */
function errorExtras(err: FastifyError): Partial<ErrorReply> {
  const { retryAfter, title } = err as { retryAfter?: number; title?: string }
  return { ...(retryAfter !== undefined ? { retryAfter } : {}), ...(title ? { error: title } : {}) }
}

function validationDetails(err: FastifyError) {
  return (err.validation ?? []).map((v) => ({
    path: `${err.validationContext ?? 'body'}${v.instancePath || ''}`,
    message: v.message ?? 'is invalid'
  }))
}

/** Turns every error into DESIGN.md's JSON shape; 5xx internals are logged, never sent. */
export const errorHandlerPlugin = fp(
  async (fastify) => {
    fastify.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      if (err.validation) {
        const details = validationDetails(err)
        const first = details[0]
        return sendError(reply, 400, 'VALIDATION_ERROR', first ? `${first.path}: ${first.message}` : 'The request is invalid', {
          details
        })
      }
      const mapped = err.code ? FASTIFY_CODES[err.code] : undefined
      if (mapped) return sendError(reply, mapped.status, mapped.code, mapped.message)
      if (err instanceof SyntaxError && (err as FastifyError).statusCode === 400) {
        return sendError(reply, 400, 'INVALID_JSON', 'The body is not valid JSON')
      }
      if (isDatabaseUnavailable(err)) {
        request.log.warn({ err }, 'database unavailable')
        return sendError(reply, 503, 'DATABASE_UNAVAILABLE', 'The database is unavailable; retry after the time in Retry-After', {
          retryAfter: DATABASE_RETRY_AFTER_SECONDS
        })
      }
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
      if (status < 500 || (status !== 500 && err.code && CODE.test(err.code))) {
        const code = err.code && CODE.test(err.code) ? err.code : (STATUS_CODES[status] ?? 'ERROR').toUpperCase().replace(/[^A-Z0-9]+/g, '_')
        return sendError(reply, status, code, err.message, errorExtras(err))
      }
      request.log.error({ err }, 'unhandled error')
      return sendError(reply, 500, 'INTERNAL_ERROR', `Something went wrong on our side; retry later or report request ${request.id}`)
    })

    fastify.setNotFoundHandler((request, reply) =>
      sendError(reply, 404, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`)
    )
  },
  { name: 'platform-error-handler', fastify: '5.x' }
)
