import createError from '@fastify/error'

/** The gateway's own codes (docs/architecture.md, Failure behaviour). Each carries its status. */
export const UpstreamError = createError('UPSTREAM_ERROR', 'The %s service could not be reached or broke the connection; retry later', 502)
export const UpstreamTimeoutError = createError('UPSTREAM_TIMEOUT', 'The %s service did not answer in time; retry later', 504)
export const CircuitOpenError = createError(
  'CIRCUIT_OPEN',
  'The %s service is unavailable after repeated failures; retry after the time in Retry-After',
  503
)
export const RateLimitedError = createError('RATE_LIMITED', 'Too many requests: retry after %s seconds (Retry-After)', 429)
export const PayloadTooLargeError = createError('PAYLOAD_TOO_LARGE', 'The body is larger than the %s bytes the gateway accepts', 413)
/** A service answered 413 and the connection broke before its answer was whole (see UpstreamRefusedError). */
export const ServicePayloadTooLargeError = createError('PAYLOAD_TOO_LARGE', 'The body is larger than the %s service accepts', 413)
/** The same for another 4xx: its status is kept (set on the instance), its body was lost. */
export const ServiceRefusedError = createError(
  'UPSTREAM_REFUSED',
  'The %s service refused the request and closed the connection before its answer was complete',
  400
)
/** Never seen by the client (it left); 400 keeps it out of the error log. */
export const ClientAbortedError = createError('CLIENT_ABORTED', 'The client closed the request before its body was complete', 400)
export const NotFoundError = createError('NOT_FOUND', 'No route %s %s', 404)
export const UriTooLongError = createError('URI_TOO_LONG', 'The path and query are longer than the %s characters the gateway accepts', 414)
export const MetricsForbiddenError = createError('FORBIDDEN', 'Metrics are not available from this address', 403)

/** An error that also tells the client when to retry (the error handler turns it into Retry-After). */
export function withRetryAfter<E extends Error>(err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: Math.max(1, Math.ceil(seconds)) })
}
