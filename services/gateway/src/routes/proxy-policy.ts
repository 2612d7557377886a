import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'
import { addDegradation, type DegradationMode } from '@platform/contracts'
import { ForbiddenError, TokenMissingError, bearerToken, withRetryAfter, type BodyDrain, type Principal } from '@platform/kit'
import { clientAddress } from '../domain/addresses.js'
import { hasDotSegment } from '../domain/paths.js'
import { NotFoundError, PayloadTooLargeError, RateLimitedError } from '../domain/errors.js'
import type { Access } from '../domain/route-table.js'
import type { RateLimit } from '../domain/rate-limits.js'
import type { Hit, RateLimiter } from '../plugins/rate-limiter.js'
import type { GatewayMetrics } from '../plugins/gateway-metrics.js'

const RATE_LIMIT_LOCAL: DegradationMode = 'rate_limit_local'

export interface PolicyDeps {
  trust: ((addr: string, i: number) => boolean) | null
  isPublic: (method: string, path: string) => boolean
  sizeLimit: number
  bodyDrain: BodyDrain
  /** Verifies synchronously (HS256, or a cached token), or null when a JWKS key may have to be fetched first. */
  verify: ((token: string) => Principal) | null
  verifyAsync: (token: string) => Promise<Principal>
  tokens: TokenReader
  /** Null when RATE_LIMIT_ENABLED is off. */
  limiter: RateLimiter | null
  windowMs: number
  metrics: GatewayMetrics
}

/**
 * A verified user is limited as themselves wherever they connect from; anyone else by address. Each key
 * is made once (bounded): the same string every time, its hash kept, instead of a new one per request.
 */
class BucketKeys {
  private readonly users = new Map<string, string>()
  private readonly addresses = new Map<string, string>()
  constructor(private readonly bucket: string) {}

  of(request: FastifyRequest): string {
    return request.identity ? this.key(this.users, 'u', request.identity.sub) : this.key(this.addresses, 'ip', request.clientIp)
  }

  private key(keys: Map<string, string>, kind: string, who: string): string {
    let key = keys.get(who)
    if (key === undefined) {
      if (keys.size >= 10_000) keys.clear()
      key = `${this.bucket}:${kind}:${who}`
      keys.set(who, key)
    }
    return key
  }
}

/** The bearer token of an Authorization header; the last header read is remembered (a busy client sends the same one). */
export class TokenReader {
  private lastHeader = ''
  private lastToken = ''

  read(authorization: string): string {
    if (authorization === this.lastHeader) return this.lastToken
    const token = bearerToken(authorization)
    this.lastHeader = authorization
    this.lastToken = token
    return token
  }
}

const pathOf = (url: string) => {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/**
 * The whole policy of one proxied route as its onRequest hook, in this order: client address, path and
 * size checks, token verification, the rate limit (by user when verified, else by address; a refused
 * token is still counted), then identity and role. Callback-style and synchronous unless Redis or a JWKS
 * fetch must be waited for: no promise per request on the common path.
 */
export function routePolicy(deps: PolicyDeps, access: Access, limit: RateLimit | null) {
  return new RoutePolicy(deps, access, limit).hook
}

class RoutePolicy {
  private readonly keys: BucketKeys | null

  constructor(
    private readonly deps: PolicyDeps,
    private readonly access: Access,
    private readonly limit: RateLimit | null
  ) {
    this.keys = limit && deps.limiter ? new BucketKeys(limit.bucket) : null
  }

  readonly hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const { deps } = this
    request.clientIp = clientAddress(request.raw, deps.trust)
    if (hasDotSegment(request.url)) return done(new NotFoundError(request.method, pathOf(request.url)))
    const length = request.headers['content-length']
    if (length !== undefined && Number(length) > deps.sizeLimit) {
      deps.bodyDrain.start(request, reply)
      return done(new PayloadTooLargeError(String(deps.sizeLimit)))
    }
    const authorization = request.headers.authorization
    if (authorization === undefined) return this.limitThenAuthorize(request, reply, done)
    let token: string
    try {
      token = deps.tokens.read(authorization)
      if (deps.verify) identify(request, deps.verify(token))
    } catch (err) {
      refuseToken(request, err)
      return this.limitThenAuthorize(request, reply, done)
    }
    if (deps.verify) return this.limitThenAuthorize(request, reply, done)
    deps
      .verifyAsync(token)
      .then(
        (principal) => identify(request, principal),
        (err: unknown) => refuseToken(request, err)
      )
      .then(() => this.limitThenAuthorize(request, reply, done), done)
  }

  private limitThenAuthorize(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const { limiter, windowMs } = this.deps
    if (!limiter || !this.keys || !this.limit) return done(this.authorize(request))
    const key = this.keys.of(request)
    const max = request.identity ? this.limit.authenticated : this.limit.anonymous
    const held = limiter.countHeld(key)
    if (held) return done(this.counted(request, reply, held, max))
    limiter.count(key, windowMs, max).then((hit) => done(this.counted(request, reply, hit, max)), done)
  }

  /** RateLimit-* headers from a count, and the 429 when it is over. */
  private counted(request: FastifyRequest, reply: FastifyReply, hit: Hit, max: number): Error | undefined {
    const { metrics } = this.deps
    if (hit.local) {
      addDegradation(reply, RATE_LIMIT_LOCAL)
      metrics.degradations.inc({ mode: RATE_LIMIT_LOCAL })
      request.rateLimitLocal = true
    }
    const reset = Math.ceil(hit.ttl / 1000)
    reply.header('ratelimit-limit', max)
    reply.header('ratelimit-remaining', Math.max(0, max - hit.current))
    reply.header('ratelimit-reset', reset)
    if (hit.current <= max) return this.authorize(request)
    const seconds = Math.max(1, reset)
    metrics.rateLimitRejections.inc({ identity: request.identity ? 'authenticated' : 'anonymous', store: hit.local ? 'local' : 'shared' })
    return withRetryAfter(new RateLimitedError(String(seconds)), seconds)
  }

  /** Whether the (counted) request may pass: the token's verdict, a public route, the role. */
  private authorize(request: FastifyRequest): Error | undefined {
    if (request.authError) return request.authError
    if (request.identity === null) return this.deps.isPublic(request.method, pathOf(request.url)) ? undefined : new TokenMissingError()
    if (this.access === 'admin' && !request.identity.roles.includes('admin')) return new ForbiddenError('This needs the admin role')
    return undefined
  }
}

function identify(request: FastifyRequest, principal: Principal): void {
  request.identity = principal
  request.user = principal
}

function refuseToken(request: FastifyRequest, err: unknown): void {
  request.authError = err instanceof Error ? err : new Error(String(err))
}
