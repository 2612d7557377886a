import type { preHandlerAsyncHookHandler } from 'fastify'
import { defineService, jwtSecret } from '@platform/kit'
import { checkConfig, drainBytes, type Config } from './config.js'
import { compileAddressList, peerAllowed } from './domain/addresses.js'
import { gatewayHealth } from './plugins/health.js'
import { gatewayMetricsPlugin } from './plugins/gateway-metrics.js'
import { upstreamsPlugin } from './plugins/upstreams.js'
import { rateLimiterPlugin } from './plugins/rate-limiter.js'
import { forwarderPlugin } from './plugins/forwarder.js'
import { webSocketProxyPlugin } from './plugins/websocket-proxy.js'
import { docsPlugin } from './plugins/docs.js'
import { loginGuardPlugin } from './plugins/login-guard.js'
import { indexRoutes } from './routes/index.js'
import { proxyRoutes } from './routes/proxy.js'

export interface GatewayOptions {
  config: Config
  /** preHandler hooks between token verification and proxying (see routes/proxy.ts), e.g. a session guard. */
  guards?: preHandlerAsyncHookHandler[]
  /**
   * One clock (ms) for the time-based decisions: the login guard's inactivity, age and windows (epoch ms),
   * breaker Retry-After, request deadlines and the JWKS re-fetch interval. Unset: each uses the real one.
   * Tests pass a clock they move instead of sleeping.
   */
  now?: () => number
  /** How the forwarder waits before a retry; tests record the waits instead. */
  sleep?: (ms: number) => Promise<unknown>
}

/** METRICS_ALLOW: the peers /metrics answers; unset, everyone. */
function metricsAllow(list: string) {
  const allow = compileAddressList(list)
  return allow ? { allow: (request: { raw: Parameters<typeof peerAllowed>[0] }) => peerAllowed(request.raw, allow) } : {}
}

/** The gateway as a plugin: what server.ts listens with and what tests build. */
export const app = defineService<GatewayOptions>({
  check: checkConfig,

  platform: ({ config, now }) => ({
    // Every guarded request makes one Redis call: batch those of a tick into one write.
    redis: { autoPipelining: true },
    // It publishes nothing; NATS is watched for /health (and for guards that need events).
    nats: { streams: [] },
    health: gatewayHealth({ probeTimeoutMs: config.HEALTH_PROBE_TIMEOUT_MS }),
    metrics: metricsAllow(config.METRICS_ALLOW),
    maxUrlLength: config.MAX_URL_LENGTH,
    // It follows REQUEST_SIZE_LIMIT, the largest body the gateway reads, not BODY_LIMIT_BYTES.
    drainBytes: drainBytes(config),
    ...(now ? { now } : {})
  }),

  async plugins(fastify, { config, now, sleep }) {
    await fastify.register(gatewayMetricsPlugin)
    await fastify.register(upstreamsPlugin, {
      urls: {
        sessions: config.SESSIONS_URLS,
        'task-sessions': config.TASK_SESSIONS_URLS,
        chat: config.CHAT_URLS,
        'cleanup-worker': config.CLEANUP_WORKER_URLS
      },
      connections: config.UPSTREAM_CONNECTIONS,
      connectTimeoutMs: config.UPSTREAM_CONNECT_TIMEOUT_MS,
      failureThreshold: config.CIRCUIT_BREAKER_FAILURE_THRESHOLD,
      errorPercentage: config.CIRCUIT_BREAKER_ERROR_PERCENTAGE,
      minVolume: config.CIRCUIT_BREAKER_MIN_VOLUME,
      windowMs: config.CIRCUIT_BREAKER_WINDOW_SECONDS * 1000,
      recoveryMs: config.CIRCUIT_BREAKER_RECOVERY_TIMEOUT * 1000,
      ...(now ? { now } : {})
    })
    await fastify.register(rateLimiterPlugin, {
      url: config.REDIS_URL,
      keyPrefix: config.REDIS_KEY_PREFIX,
      commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
      failureThreshold: config.REDIS_FAILURE_THRESHOLD,
      localKeys: config.RATE_LIMIT_LOCAL_KEYS
    })
    await fastify.register(forwarderPlugin, {
      maxRetries: config.MAX_RETRIES,
      retryDelaySeconds: config.RETRY_DELAY,
      backoffFactor: config.BACKOFF_FACTOR,
      sizeLimit: config.REQUEST_SIZE_LIMIT,
      ...(now ? { now } : {}),
      ...(sleep ? { sleep } : {})
    })
    await fastify.register(webSocketProxyPlugin, {
      trustedProxies: config.TRUSTED_PROXIES,
      rateLimit: {
        enabled: config.RATE_LIMIT_ENABLED,
        windowMs: config.RATE_LIMIT_WINDOW_SECONDS * 1000,
        anonymous: config.RATE_LIMIT_ANONYMOUS,
        authenticated: config.RATE_LIMIT_AUTHENTICATED
      },
      timeoutMs: config.UPSTREAM_TIMEOUT_MS,
      maxUrlLength: config.MAX_URL_LENGTH
    })
    await fastify.register(docsPlugin, { serverUrl: config.PUBLIC_URL ?? '/' })
    if (config.LOGIN_GUARD_ENABLED) await fastify.register(loginGuardPlugin, loginGuardOptions(config, now))
  },

  async routes(fastify, { config, guards = [] }) {
    await fastify.register(indexRoutes)
    // Guards run after the token is verified and the request counted, before proxying.
    const allGuards = config.LOGIN_GUARD_ENABLED ? [fastify.loginGuard.hook, ...guards] : guards
    await fastify.register(proxyRoutes, { config, guards: allGuards })
  }
})

function loginGuardOptions(config: Config, now: (() => number) | undefined) {
  return {
    required: config.LOGIN_SESSION_REQUIRED,
    inactivitySeconds: config.SESSION_INACTIVITY_TIMEOUT,
    maxAgeSeconds: config.LOGIN_SESSION_MAX_AGE,
    requestRate: config.SUSPICIOUS_REQUEST_RATE,
    flushSeconds: config.LOGIN_ACTIVITY_FLUSH_SECONDS,
    timeoutMs: config.LOGIN_GUARD_TIMEOUT_MS,
    jwt: { secret: jwtSecret(config), issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE },
    ...(now ? { now } : {})
  }
}
