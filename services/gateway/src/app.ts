import type { FastifyInstance, FastifyPluginAsync, preHandlerAsyncHookHandler } from 'fastify'
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { authOptions, authPlugin, bodyDrainPlugin, errorHandlerPlugin, jwtSecret, metricsPlugin, natsPlugin, redisPlugin } from '@platform/kit'
import { checkConfig, drainBytes, type Config } from './config.js'
import { compileAddressList, peerAllowed } from './domain/addresses.js'
import { MetricsForbiddenError, UriTooLongError } from './domain/errors.js'
import { gatewayHealthPlugin } from './plugins/health.js'
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

/** METRICS_ALLOW: /metrics answers 403 to every other peer. */
function restrictMetrics(fastify: FastifyInstance, list: string) {
  const allow = compileAddressList(list)
  if (!allow) return
  fastify.addHook('onRoute', (route) => {
    if (route.url !== '/metrics') return
    const check = async (request: { raw: Parameters<typeof peerAllowed>[0] }) => {
      if (!peerAllowed(request.raw, allow)) throw new MetricsForbiddenError()
    }
    route.onRequest = [...(route.onRequest ? [route.onRequest].flat() : []), check]
  })
}

/**
 * The gateway as a plugin: what server.ts listens with and what tests build. It loads the kit's
 * plugins one by one rather than platformPlugins, because its /health (upstreams, breakers) replaces
 * the kit's; the order is otherwise the same: error handler, metrics, body drain, health, auth, Redis, NATS.
 * What Node's parser and Fastify's router refuse is answered by the kit's server options (fastifyOptions).
 */
export const app: FastifyPluginAsync<GatewayOptions> = async (fastify, { config, guards = [], now, sleep }) => {
  checkConfig(config)
  fastify.setValidatorCompiler(TypeBoxValidatorCompiler)
  const maxUrl = config.MAX_URL_LENGTH
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done(request.url.length > maxUrl ? new UriTooLongError(String(maxUrl)) : undefined)
  })
  await fastify.register(errorHandlerPlugin)
  restrictMetrics(fastify, config.METRICS_ALLOW)
  await fastify.register(metricsPlugin)
  // Its bound follows REQUEST_SIZE_LIMIT, the largest body the gateway reads, not BODY_LIMIT_BYTES.
  await fastify.register(bodyDrainPlugin, { maxBytes: drainBytes(config), timeoutMs: config.REQUEST_DRAIN_TIMEOUT_MS })
  await fastify.register(gatewayHealthPlugin, { probeTimeoutMs: config.HEALTH_PROBE_TIMEOUT_MS })
  const auth = authOptions(config)
  if (now && auth.jwks) auth.jwks.now = now
  await fastify.register(authPlugin, auth)
  await fastify.register(redisPlugin, {
    url: config.REDIS_URL,
    keyPrefix: config.REDIS_KEY_PREFIX,
    commandTimeoutMs: config.REDIS_COMMAND_TIMEOUT_MS,
    failureThreshold: config.REDIS_FAILURE_THRESHOLD,
    // Every guarded request makes one call: batch those of a tick into one write.
    autoPipelining: true
  })
  // The gateway publishes nothing; NATS is watched for /health (and for guards that need events).
  await fastify.register(natsPlugin, { url: config.NATS_URL, namespace: config.NATS_NAMESPACE, name: config.SERVICE_NAME, streams: [] })

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

  if (config.LOGIN_GUARD_ENABLED) {
    await fastify.register(loginGuardPlugin, {
      required: config.LOGIN_SESSION_REQUIRED,
      inactivitySeconds: config.SESSION_INACTIVITY_TIMEOUT,
      maxAgeSeconds: config.LOGIN_SESSION_MAX_AGE,
      requestRate: config.SUSPICIOUS_REQUEST_RATE,
      flushSeconds: config.LOGIN_ACTIVITY_FLUSH_SECONDS,
      timeoutMs: config.LOGIN_GUARD_TIMEOUT_MS,
      jwt: { secret: jwtSecret(config), issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE },
      ...(now ? { now } : {})
    })
  }

  await fastify.register(indexRoutes)
  // Guards run after the token is verified and the request counted, before proxying.
  const allGuards = config.LOGIN_GUARD_ENABLED ? [fastify.loginGuard.hook, ...guards] : guards
  await fastify.register(proxyRoutes, { config, guards: allGuards })
}
