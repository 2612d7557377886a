/** Methods that may be repeated without changing anything (RFC 9110 safe methods). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/** Statuses worth another attempt: the upstream or something before it was briefly unavailable. */
const RETRYABLE_STATUSES = new Set([502, 503, 504])

/** Only safe methods, or a write the client made idempotent with Idempotency-Key, are ever retried. */
export function mayRetry(method: string, idempotencyKey: string | string[] | undefined): boolean {
  return SAFE_METHODS.has(method) || (typeof idempotencyKey === 'string' && idempotencyKey.length > 0)
}

export const isRetryableStatus = (status: number) => RETRYABLE_STATUSES.has(status)

/**
 * Exponential backoff with "equal jitter": half of RETRY_DELAY × BACKOFF_FACTOR^retry is fixed, the
 * other half random, so replicas retrying together spread out but never retry at once.
 */
export function backoffMs(retry: number, delaySeconds: number, factor: number, random: () => number = Math.random): number {
  const full = delaySeconds * 1000 * factor ** retry
  return full / 2 + random() * (full / 2)
}

/** An upstream's Retry-After (delay-seconds or an HTTP date) in ms; null when absent or unreadable. */
export function retryAfterMs(header: string | string[] | undefined, now: number = Date.now()): number | null {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || value === '') return null
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? null : Math.max(0, date - now)
}
