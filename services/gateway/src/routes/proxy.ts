import type { FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler, preHandlerHookHandler } from 'fastify'
import { PublicApi } from '@platform/contracts'
import type { Principal } from '@platform/kit'
import type { Config } from '../config.js'
import { ProxyRoutes, publicRouteMatcher } from '../domain/route-table.js'
import { compileAddressList } from '../domain/addresses.js'
import { rateLimitFor, RateLimitGroups } from '../domain/rate-limits.js'
import { TokenReader, routePolicy, type PolicyDeps } from './proxy-policy.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified token's principal, or null for an anonymous request. */
    identity: Principal | null
    /** Why the token was refused; answered once the request has been counted by the rate limiter. */
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
  guards?: Array<preHandlerAsyncHookHandler | preHandlerHookHandler>
}

/**
 * Every proxied route, in one encapsulated context whose pipeline is the route's onRequest hook (the
 * policy: routes/proxy-policy.ts) → preHandler: guards → handler: the forwarder. Bodies are not parsed:
 * they stream to the upstream. Routes are registered per method group, so each group counts into its
 * own rate-limit bucket.
 */
export const proxyRoutes: FastifyPluginAsync<ProxyRoutesOptions> = async (fastify, { config, guards = [] }) => {
  const { forwarder, upstreams } = fastify
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => done(null, payload))
  fastify.decorateRequest('identity', null)
  fastify.decorateRequest('authError', null)
  fastify.decorateRequest('rateLimitLocal', false)
  for (const guard of guards) fastify.addHook('preHandler', guard)

  const deps: PolicyDeps = {
    trust: compileAddressList(config.TRUSTED_PROXIES),
    isPublic: publicRouteMatcher(PublicApi),
    sizeLimit: config.REQUEST_SIZE_LIMIT,
    bodyDrain: fastify.bodyDrain,
    // HS256 only: the (cached) check is synchronous. With a JWKS, an unknown kid may have to wait for keys.
    verify: fastify.jwks === null ? fastify.verifyToken : null,
    verifyAsync: fastify.verifyTokenAsync,
    tokens: new TokenReader(),
    limiter: config.RATE_LIMIT_ENABLED ? fastify.rateLimiter : null,
    windowMs: Math.trunc(config.RATE_LIMIT_WINDOW_SECONDS * 1000),
    metrics: fastify.gatewayMetrics
  }
  const limits = { anonymous: config.RATE_LIMIT_ANONYMOUS, authenticated: config.RATE_LIMIT_AUTHENTICATED }
  for (const route of ProxyRoutes) {
    const service = upstreams.get(route.service)
    const timing = { timeoutMs: route.timeoutMs ?? config.UPSTREAM_TIMEOUT_MS, deadlineMs: route.deadlineMs ?? config.REQUEST_DEADLINE_MS }
    const handler = (request: FastifyRequest, reply: FastifyReply) => forwarder.forward(request, reply, service, timing)
    for (const group of RateLimitGroups) {
      const onRequest = routePolicy(deps, route.access, rateLimitFor(route.service, group, limits))
      for (const url of [route.prefix, `${route.prefix}/*`]) {
        fastify.route({ method: [...group.methods], url, exposeHeadRoute: false, onRequest, handler })
      }
    }
  }
}
