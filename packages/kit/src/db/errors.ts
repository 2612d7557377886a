/** Error codes and messages that mean "Postgres cannot be reached", whatever layer raised them. */
const PG_UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08001',
  '08003',
  '08006',
  'P1001',
  'P1002',
  'P1017',
  'P2024'
])
const UNAVAILABLE_MESSAGE =
  /ECONNREFUSED|ECONNRESET|Connection terminated|connection timeout|timeout exceeded when trying to connect|Can't reach database|Server has closed the connection|DatabaseNotReachable|ConnectionClosed|SocketTimeout|the database system is (starting up|shutting down)/i

/** True when an error, or any error in its cause chain, means the database is unreachable. */
export function isDatabaseUnavailable(err: unknown, depth = 0): boolean {
  if (!err || typeof err !== 'object' || depth > 5) return false
  const e = err as { code?: unknown; message?: unknown; cause?: unknown; kind?: unknown; errors?: unknown }
  if (typeof e.code === 'string' && PG_UNAVAILABLE_CODES.has(e.code)) return true
  if (typeof e.kind === 'string' && /NotReachable|ConnectionClosed|SocketTimeout|TooManyConnections/.test(e.kind)) return true
  if (typeof e.message === 'string' && UNAVAILABLE_MESSAGE.test(e.message)) return true
  if (Array.isArray(e.errors) && e.errors.some((x) => isDatabaseUnavailable(x, depth + 1))) return true
  return isDatabaseUnavailable(e.cause, depth + 1)
}
