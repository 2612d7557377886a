import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { addDegradation, PublicApi, type DegradationMode } from '@platform/contracts'
import { ForbiddenError, TokenMissingError, bearerToken, type Principal } from '@platform/kit'
import type { Config } from '../config.js'
import { ProxyRoutes, publicRouteMatcher, type Access } from '../domain/route-table.js'
import { compileAddressList, clientAddress } from '../domain/addresses.js'
import { hasDotSegment } from '../domain/paths.js'
import { NotFoundError, PayloadTooLargeError, RateLimitedError, withRetryAfter } from '../domain/errors.js'
import { rateLimitFor, type RateLimitGroup, RateLimitGroups } from '../domain/rate-limits.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token's principal, or null for an anonymous request. */
    identity: Principal | null
    /** Why the token was refused; thrown once the request has been counted by the rate limiter. */
    authError: Error | null
    /** Counted by this instance alone because Redis was down (X-Degradation-Mode: rate_limit_local). */
    rateLimitLocal: boolean
  }
}

export interface ProxyRoutesOptions {
  config: Config
  /**
   * preHandler hooks run after the token is verified and the request counted, before it is proxied:
   * the place for a session guard. They see `request.identity` (null when anonymous).
   */
  guards?: preHandlerAsyncHookHandler[]
}

const RATE_LIMIT_LOCAL: DegradationMode = 'rate_limit_local'

type Limiter = ReturnType<FastifyInstance['createRateLimit']>

/**
 * Every proxied route, in one encapsulated context whose pipeline is the route's onRequest hook (client
 * address, path and size checks, token verification, the rate limit by user when verified or else by
 * address, then identity and role) → preHandler: guards → handler: the forwarder. Bodies are not
 * parsed: they stream to the upstream.
 */
export const proxyRoutes: FastifyPluginAsync<ProxyRoutesOptions> = async (fastify, { config, guards = [] }) => {
  const trust = compileAddressList(config.TRUSTED_PROXIES)
  const isPublic = publicRouteMatcher(PublicApi)
  const sizeLimit = config.REQUEST_SIZE_LIMIT
  const { rateLimiter, gatewayMetrics, forwarder, upstreams, bodyDrain } = fastify

  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
  fastify.decorateRequest('identity', null)
  fastify.decorateRequest('authError', null)
  fastify.decorateRequest('rateLimitLocal', false)

  if (config.RATE_LIMIT_ENABLED) {
    await fastify.register(rateLimit, { global: false, store: rateLimiter.store(), timeWindow: config.RATE_LIMIT_WINDOW_SECONDS * 1000 })
  }

  /** Counts the request in its bucket, sets RateLimit-* headers, and refuses it with 429 when over. */
  const applyLimit = async (request: FastifyRequest, reply: FastifyReply, limiter: Limiter) => {
    const result = await limiter(request)
    if (result.isAllowed) return
    if (rateLimiter.takeLocal(result.key)) {
      addDegradation(reply, RATE_LIMIT_LOCAL)
      gatewayMetrics.degradations.inc({ mode: RATE_LIMIT_LOCAL })
      request.rateLimitLocal = true
    }
    reply.header('ratelimit-limit', result.max)
    reply.header('ratelimit-remaining', result.remaining)
    reply.header('ratelimit-reset', result.ttlInSeconds)
    if (!result.isExceeded) return
    const seconds = Math.max(1, result.ttlInSeconds)
    gatewayMetrics.rateLimitRejections.inc({
      identity: request.identity ? 'authenticated' : 'anonymous',
      store: request.rateLimitLocal ? 'local' : 'shared'
    })
    throw withRetryAfter(new RateLimitedError(String(seconds)), seconds)
  }

  // HS256 only: the (cached) check is synchronous. With a JWKS, an unknown kid may have to wait for keys.
  const verify = fastify.jwks === null ? fastify.verifyToken : fastify.verifyTokenAsync

  /**
   * The whole policy of one route as its onRequest hook, in this order: a refused token is still
   * counted (by address). Built per route so nothing is looked up per request.
   */
  const policy = (access: Access, limiters: { anonymous: Limiter; authenticated: Limiter } | null) =>
    async function proxyPolicy(request: FastifyRequest, reply: FastifyReply) {
      request.clientIp = clientAddress(request.raw, trust)
      if (hasDotSegment(request.url)) throw new NotFoundError(request.method, request.url.split('?')[0])
      const length = request.headers['content-length']
      if (length !== undefined && Number(length) > sizeLimit) {
        bodyDrain.start(request, reply)
        throw new PayloadTooLargeError(String(sizeLimit))
      }
      const authorization = request.headers.authorization
      if (authorization !== undefined) {
        try {
          const principal = await verify(bearerToken(authorization))
          request.identity = principal
          request.user = principal
        } catch (err) {
          request.authError = err as Error
        }
      }
      if (limiters) await applyLimit(request, reply, request.identity ? limiters.authenticated : limiters.anonymous)
      if (request.authError) throw request.authError
      if (request.identity === null) {
        if (isPublic(request.method, request.url.split('?')[0] as string)) return
        throw new TokenMissingError()
      }
      if (access === 'admin' && !request.identity.roles.includes('admin')) throw new ForbiddenError('This needs the admin role')
    }
  for (const guard of guards) fastify.addHook('preHandler', guard)

  const limits = {
    anonymous: config.RATE_LIMIT_ANONYMOUS,
    authenticated: config.RATE_LIMIT_AUTHENTICATED
  }
  for (const route of ProxyRoutes) {
    const service = upstreams.get(route.service)
    const timing = { timeoutMs: route.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS, deadlineMs: route.deadlineMs ?? config.REQUEST_DEADLINE_MS }
    const handler = (request: FastifyRequest, reply: Parameters<typeof forwarder.forward>[1]) =>
      forwarder.forward(request, reply, service, timing)
    for (const group of RateLimitGroups as readonly RateLimitGroup[]) {
      const limit = rateLimitFor(route.service, group, limits)
      const limiter = (max: number) =>
        fastify.createRateLimit({ keyGenerator: (request: FastifyRequest) => `${limit.bucket}:${identityKey(request)}`, max })
      const limiters = config.RATE_LIMIT_ENABLED ? { anonymous: limiter(limit.anonymous), authenticated: limiter(limit.authenticated) } : null
      const onRequest = policy(route.access, limiters)
      for (const url of [route.prefix, `${route.prefix}/*`]) {
        fastify.route({ method: group.methods as unknown as string[], url, exposeHeadRoute: false, onRequest, handler })
      }
    }
  }
}

/** A verified user is limited as themselves wherever they connect from; anyone else by address. */
export function identityKey(request: FastifyRequest): string {
  return request.identity ? `u:${request.identity.sub}` : `ip:${request.clientIp}`
}
