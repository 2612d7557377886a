import { randomUUID } from 'node:crypto'
import { maxHeaderSize as defaultMaxHeaderSize, STATUS_CODES, type Server } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'

/** What Node's HTTP parser refuses before any route runs, as the platform's error codes. */
function classify(code: string | undefined, maxHeaderSize: number): { status: number; code: string; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') {
    return { status: 431, code: 'HEADERS_TOO_LARGE', message: `The request line and headers are larger than the ${maxHeaderSize} bytes the gateway reads` }
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, code: 'REQUEST_TIMEOUT', message: 'The request did not arrive in time' }
  return { status: 400, code: 'BAD_REQUEST', message: 'The request is not valid HTTP' }
}

/**
 * Requests Node's parser refuses (headers over `maxHeaderSize`, which an over-long URL also hits; bad
 * HTTP; a request that never completes) are answered in the platform's JSON error shape with a code,
 * where Fastify's default answer has no code and no request id. It replaces Fastify's clientError
 * listener and behaves like it otherwise: nothing is written to a socket that is gone.
 */
export const clientErrorsPlugin = fp(
  async (fastify) => {
    const server = fastify.server as Server & { maxHeaderSize?: number }
    const maxHeaderSize = server.maxHeaderSize ?? defaultMaxHeaderSize
    const onClientError = (err: NodeJS.ErrnoException, socket: Duplex) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return
      const { status, code, message } = classify(err.code, maxHeaderSize)
      const requestId = randomUUID()
      fastify.log.debug({ err, status, requestId }, 'refused by the HTTP parser')
      if (socket.writable) {
        const body = JSON.stringify({ error: STATUS_CODES[status], message, code, requestId })
        socket.write(
          `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
            `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\nx-request-id: ${requestId}\r\n\r\n${body}`
        )
      }
      socket.destroy(err)
    }
    server.removeAllListeners('clientError')
    server.on('clientError', onClientError)
  },
  { name: 'client-errors' }
)
