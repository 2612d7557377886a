import { Type, type Static } from 'typebox'
import { ConfigError, serviceConfig } from '@platform/kit'
import { ProxyRoutes } from './domain/route-table.js'

/** One or more upstream base URLs, comma-separated: several instances are balanced round robin. */
const UrlList = (url: string) => Type.String({ pattern: '^https?://[^,\\s]+(,\\s*https?://[^,\\s]+)*$', default: url })

/** IPs, CIDRs or loopback/linklocal/uniquelocal, comma-separated; empty means none. */
const AddressList = Type.String({ pattern: '^[0-9A-Za-z.:/,\\s]*$', default: '' })

export const ConfigSchema = serviceConfig(
  { port: 8080, schema: 'gateway', name: 'gateway' },
  {
    SESSIONS_URLS: UrlList('http://127.0.0.1:3001'),
    TASK_SESSIONS_URLS: UrlList('http://127.0.0.1:3002'),
    CHAT_URLS: UrlList('http://127.0.0.1:3003'),
    CLEANUP_WORKER_URLS: UrlList('http://127.0.0.1:3004'),

    /** Peers whose X-Forwarded-For is believed (load balancers in front); everyone else is the client. */
    TRUSTED_PROXIES: AddressList,
    /** Who may read /metrics; empty = everyone. */
    METRICS_ALLOW: AddressList,

    RATE_LIMIT_ENABLED: Type.Boolean({ default: true }),
    /** Requests per window for a client without a valid token, by client IP. */
    RATE_LIMIT_ANONYMOUS: Type.Integer({ minimum: 1, default: 100 }),
    /** Requests per window for a verified user, by `sub`. */
    RATE_LIMIT_AUTHENTICATED: Type.Integer({ minimum: 1, default: 1000 }),
    RATE_LIMIT_WINDOW_SECONDS: Type.Number({ minimum: 0.1, default: 3600 }),
    /** Keys the per-instance fallback limiter keeps while Redis is down. */
    RATE_LIMIT_LOCAL_KEYS: Type.Integer({ minimum: 100, default: 100_000 }),

    /** Consecutive failures of one instance that open its breaker. */
    CIRCUIT_BREAKER_FAILURE_THRESHOLD: Type.Integer({ minimum: 1, default: 5 }),
    /** …or this error percentage over the rolling window, once the window holds the minimum volume. */
    CIRCUIT_BREAKER_ERROR_PERCENTAGE: Type.Number({ minimum: 1, maximum: 100, default: 50 }),
    CIRCUIT_BREAKER_MIN_VOLUME: Type.Integer({ minimum: 1, default: 20 }),
    CIRCUIT_BREAKER_WINDOW_SECONDS: Type.Number({ minimum: 0.1, default: 10 }),
    /** Seconds an open breaker waits before letting one half-open probe through. */
    CIRCUIT_BREAKER_RECOVERY_TIMEOUT: Type.Number({ minimum: 0.01, default: 60 }),

    /** Retries of a safe or idempotent request (GET, HEAD, OPTIONS, or with Idempotency-Key). */
    MAX_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 3 }),
    /** First backoff in seconds; each retry waits BACKOFF_FACTOR times longer, with jitter. */
    RETRY_DELAY: Type.Number({ minimum: 0, default: 1 }),
    BACKOFF_FACTOR: Type.Number({ minimum: 1, default: 2 }),

    /** Time for an upstream to answer with headers, per attempt (routes may set their own); within REQUEST_DEADLINE_MS. */
    UPSTREAM_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 5000 }),
    /** The whole request, every attempt and backoff included: a client gets an answer by then (routes may set their own). */
    REQUEST_DEADLINE_MS: Type.Integer({ minimum: 10, default: 10_000 }),
    UPSTREAM_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 2000 }),
    /** Keep-alive connections per upstream instance. */
    UPSTREAM_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 4096, default: 128 }),
    /** Largest request body proxied, streamed or not (10 MiB). */
    REQUEST_SIZE_LIMIT: Type.Integer({ minimum: 1024, default: 10 * 1024 * 1024 }),
    /** After an answer given while the body is still coming (413…), bytes of the rest read and thrown away before the connection closes (default 2 × REQUEST_SIZE_LIMIT; 0 = none). */
    REQUEST_DRAIN_BYTES: Type.Optional(Type.Integer({ minimum: 0 })),
    /** …and for at most this long. */
    REQUEST_DRAIN_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 5000 }),
    /** Longest request target (path and query) accepted: 414 URI_TOO_LONG beyond; below Node's 16 KiB header limit. */
    MAX_URL_LENGTH: Type.Integer({ minimum: 256, maximum: 16_000, default: 8192 }),
    /** The public base URL, the OpenAPI document's server (default `/`, the host that served it). */
    PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),

    /** Time /health gives each upstream instance to answer its own /health. */
    HEALTH_PROBE_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 1000 }),

    /** The login-session guard (issue 6) on every authenticated request whose token has a `sid`. */
    LOGIN_GUARD_ENABLED: Type.Boolean({ default: true }),
    /** Refuse tokens without `sid` (401 SESSION_REQUIRED). */
    LOGIN_SESSION_REQUIRED: Type.Boolean({ default: false }),
    /** Seconds without a request after which a login session ends (inactive). */
    SESSION_INACTIVITY_TIMEOUT: Type.Integer({ minimum: 1, default: 3600 }),
    /** Seconds after its start at which a login session ends (expired). */
    LOGIN_SESSION_MAX_AGE: Type.Integer({ minimum: 1, default: 1209600 }),
    /** More requests than this per minute on one login session is a security violation. */
    SUSPICIOUS_REQUEST_RATE: Type.Integer({ minimum: 1, default: 100 }),
    /** A session's last-seen time and request count reach the sessions service at most this often. */
    LOGIN_ACTIVITY_FLUSH_SECONDS: Type.Number({ minimum: 0.1, default: 30 }),
    /** Time the guard gives the sessions service per call. */
    LOGIN_GUARD_TIMEOUT_MS: Type.Integer({ minimum: 10, default: 3000 }),

    /** The gateway sees every request: verified tokens are cached (expiry is still checked). */
    JWT_VERIFY_CACHE_SIZE: Type.Integer({ minimum: 0, default: 10_000 })
  }
)
export type Config = Static<typeof ConfigSchema>

/** Rules between variables, checked at boot like the variables themselves. */
export function checkConfig(config: Config): void {
  const problems: string[] = []
  if (config.UPSTREAM_TIMEOUT_MS > config.REQUEST_DEADLINE_MS) {
    problems.push(`UPSTREAM_TIMEOUT_MS: must not exceed REQUEST_DEADLINE_MS (${config.REQUEST_DEADLINE_MS}) (got ${config.UPSTREAM_TIMEOUT_MS})`)
  }
  for (const route of ProxyRoutes) {
    if (route.timeoutMs !== undefined && route.timeoutMs > (route.deadlineMs ?? config.REQUEST_DEADLINE_MS)) {
      problems.push(`REQUEST_DEADLINE_MS: ${route.prefix} needs ${route.timeoutMs} ms per attempt (got ${config.REQUEST_DEADLINE_MS})`)
    }
  }
  if (problems.length) throw new ConfigError(problems)
}

/** REQUEST_DRAIN_BYTES, or twice the body limit when unset. */
export const drainBytes = (config: Config) => config.REQUEST_DRAIN_BYTES ?? 2 * config.REQUEST_SIZE_LIMIT
