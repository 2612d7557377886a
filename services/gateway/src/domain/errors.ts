import { defineError } from '@platform/kit'

/** The gateway's own codes (docs/errors.md); each takes its status from the catalogue. */
export const UpstreamError = defineError('UPSTREAM_ERROR', 'The %s service could not be reached or broke the connection; retry later')
export const UpstreamTimeoutError = defineError('UPSTREAM_TIMEOUT', 'The %s service did not answer in time; retry later')
export const CircuitOpenError = defineError(
  'CIRCUIT_OPEN',
  'The %s service is unavailable after repeated failures; retry after the time in Retry-After'
)
export const RateLimitedError = defineError('RATE_LIMITED', 'Too many requests: retry after %s seconds (Retry-After)')
export const PayloadTooLargeError = defineError('PAYLOAD_TOO_LARGE', 'The body is larger than the %s bytes the gateway accepts')
/** A service answered 413 and the connection broke before its answer was whole (see UpstreamRefusedError). */
export const ServicePayloadTooLargeError = defineError('PAYLOAD_TOO_LARGE', 'The body is larger than the %s service accepts')
/** The same for another 4xx: its status is kept (set on the instance), its body was lost. */
export const ServiceRefusedError = defineError(
  'UPSTREAM_REFUSED',
  'The %s service refused the request and closed the connection before its answer was complete'
)
/** Never seen by the client (it left); its 4xx keeps it out of the error log. */
export const ClientAbortedError = defineError('CLIENT_ABORTED', 'The client closed the request before its body was complete')
export const NotFoundError = defineError('NOT_FOUND', 'No route %s %s')
