import { randomUUID } from 'node:crypto'
import { maxHeaderSize as defaultMaxHeaderSize, STATUS_CODES, type Server } from 'node:http'
import type { Socket } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { isErrorCode, type ErrorCode, type ErrorReply } from '@platform/contracts'
import { isDatabaseUnavailable } from '../db/errors.js'

interface Mapped {
  status: number
  code: ErrorCode
  message: string | ((request: FastifyRequest) => string)
}

/** Fastify's own codes for bad input (body parsers, router), mapped onto ours. */
const FASTIFY_CODES: Record<string, Mapped> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'The body is not valid JSON' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'INVALID_JSON', message: 'The body is empty but Content-Type is application/json' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Send the body as application/json' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, code: 'INVALID_CONTENT_LENGTH', message: 'Content-Length does not match the body' },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
    message: (request) => `The body is larger than the ${request.routeOptions.bodyLimit} bytes this route accepts`
  },
  FST_ERR_BAD_URL: { status: 400, code: 'BAD_URL', message: 'The path is not a valid URL: it has a malformed percent-encoding' },
  FST_ERR_MAX_PARAM_LENGTH: { status: 414, code: 'URI_TOO_LONG', message: 'A path segment is longer than this server accepts' }
}

export const DATABASE_RETRY_AFTER_SECONDS = 5

export function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, extra: Partial<ErrorReply> = {}): FastifyReply {
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

/**
 * A 4xx whose error carries no catalogue code (a library's own): the status title as a code when the
 * catalogue has it (404 NOT_FOUND, 415 UNSUPPORTED_MEDIA_TYPE, ...), else BAD_REQUEST; the status stays.
 */
function clientCodeFor(status: number): ErrorCode {
  const title = (STATUS_CODES[status] ?? '').toUpperCase().replace(/[^A-Z0-9]+/g, '_')
  return isErrorCode(title) ? title : 'BAD_REQUEST'
}

function validationDetails(err: FastifyError) {
  return (err.validation ?? []).map((v) => ({
    path: `${err.validationContext ?? 'body'}${v.instancePath || ''}`,
    message: v.message ?? 'is invalid'
  }))
}

function sendMapped(reply: FastifyReply, { status, code, message }: Mapped): FastifyReply {
  return sendError(reply, status, code, typeof message === 'string' ? message : message(reply.request))
}

/**
 * Fastify's `frameworkErrors`: what its router refuses before any route or hook runs (a malformed
 * percent-encoding in the path, a path parameter over maxParamLength), in the JSON shape with a request id.
 */
export function frameworkErrorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  reply.header('x-request-id', request.id)
  const mapped = err.code ? FASTIFY_CODES[err.code] : undefined
  if (mapped) {
    request.log.debug({ err }, 'refused by the router')
    sendMapped(reply, mapped)
    return
  }
  request.log.error({ err }, 'unhandled framework error')
  sendError(reply, 500, 'INTERNAL_ERROR', `Something went wrong on our side; retry later or report request ${request.id}`)
}

/** What Node's HTTP parser refuses, as our codes. */
function clientErrorAnswer(code: string | undefined, maxHeaderSize: number): { status: number; code: ErrorCode; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return {
      status: 431,
      code: 'HEADERS_TOO_LARGE',
      message: `The request line and headers are larger than the ${maxHeaderSize} bytes this server reads`
    }
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, code: 'REQUEST_TIMEOUT', message: 'The request did not arrive in time' }
  return { status: 400, code: 'BAD_REQUEST', message: 'The request is not valid HTTP' }
}

/**
 * Fastify's `clientErrorHandler`: requests Node's parser refuses (headers over `maxHeaderSize`, which an
 * over-long URL also hits; bad HTTP; a request that never completes) are answered in the JSON shape with
 * a code and a request id, where Fastify's default answer has neither. Like Node's own handler it writes
 * nothing to a socket that is gone or whose response has already begun.
 */
export function clientErrorHandler(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const server = this.server as Server & { maxHeaderSize?: number }
  const { status, code, message } = clientErrorAnswer(err.code, server.maxHeaderSize ?? defaultMaxHeaderSize)
  const requestId = randomUUID()
  this.log.debug({ err, status, requestId }, 'refused by the HTTP parser')
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (socket.writable && !inFlight?.headersSent) {
    const title = STATUS_CODES[status] ?? 'Error'
    const body = JSON.stringify({ error: title, message, code, requestId } satisfies ErrorReply)
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/json; charset=utf-8\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\nx-request-id: ${requestId}\r\n\r\n${body}`
    )
  }
  socket.destroy(err)
}

/** Turns every error into the JSON error shape (docs/architecture.md); 5xx internals are logged, never sent. */
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
      if (mapped) return sendMapped(reply, mapped)
      if (err instanceof SyntaxError && err.statusCode === 400) {
        return sendError(reply, 400, 'INVALID_JSON', 'The body is not valid JSON')
      }
      if (isDatabaseUnavailable(err)) {
        request.log.warn({ err }, 'database unavailable')
        return sendError(reply, 503, 'DATABASE_UNAVAILABLE', 'The database is unavailable; retry after the time in Retry-After', {
          retryAfter: DATABASE_RETRY_AFTER_SECONDS
        })
      }
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
      if (status < 500 || (status !== 500 && isErrorCode(err.code))) {
        return sendError(reply, status, isErrorCode(err.code) ? err.code : clientCodeFor(status), err.message, errorExtras(err))
      }
      request.log.error({ err }, 'unhandled error')
      return sendError(reply, 500, 'INTERNAL_ERROR', `Something went wrong on our side; retry later or report request ${request.id}`)
    })

    fastify.setNotFoundHandler((request, reply) => sendError(reply, 404, 'NOT_FOUND', `No route ${request.method} ${request.url.split('?')[0]}`))
  },
  { name: 'platform-error-handler', fastify: '5.x' }
)
