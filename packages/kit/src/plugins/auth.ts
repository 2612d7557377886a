import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import type { Role } from '@platform/contracts'
import { ForbiddenError, TokenExpiredError, TokenInvalidError, TokenMissingError } from '../errors.js'
import { JwksKeySet, jwtHeader } from '../jwks.js'
import type { BaseConfig } from '../config.js'
import { jwtSecret } from '../server.js'

/** Who a verified token speaks for. */
export interface Principal {
  sub: string
  sid?: string
  roles: string[]
  jti?: string
  exp?: number
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: Record<string, unknown>
    user: Principal
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** preHandler: verifies the bearer token and sets request.user. */
    authenticate: preHandlerAsyncHookHandler
    /** preHandler factory: authenticates, then requires one of the roles. */
    requireRole: (...roles: Role[]) => preHandlerAsyncHookHandler
    /**
     * Verifies a raw token (WebSocket upgrades); throws TOKEN_* errors. Synchronous, so a JWKS token
     * whose kid is not cached yet fails (and schedules a re-fetch): prefer verifyTokenAsync.
     */
    verifyToken: (token: string) => Principal
    /** Verifies a raw token; a JWKS token with an unknown kid waits for the (rate-limited) re-fetch. */
    verifyTokenAsync: (token: string) => Promise<Principal>
    /** The identity provider's keys when JWT_JWKS_URL is set, else null. */
    jwks: JwksKeySet | null
  }
}

/** RS256/ES256 verification from an identity provider's JWKS, beside HS256. */
export interface AuthJwksOptions {
  url: string
  algorithms: string[]
  refetchIntervalSeconds: number
  cacheTtlSeconds: number
  timeoutMs: number
  /** Clock for the re-fetch interval [performance.now]; tests move it. */
  now?: () => number
}

export interface AuthOptions {
  secret: string
  issuer?: string
  audience?: string
  clockToleranceSeconds: number
  jwks?: AuthJwksOptions
  /** Verified tokens kept in memory (expiry still applies, a minute at most); 0 or unset = none. */
  cacheSize?: number
}

/** The auth options a service's config describes (JWT_* and JWKS_* variables). */
export function authOptions(config: BaseConfig): AuthOptions {
  return {
    secret: jwtSecret(config),
    ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
    ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
    clockToleranceSeconds: config.JWT_CLOCK_TOLERANCE_SECONDS,
    ...(config.JWT_JWKS_URL
      ? {
          jwks: {
            url: config.JWT_JWKS_URL,
            algorithms: config.JWT_JWKS_ALGORITHMS.split(','),
            refetchIntervalSeconds: config.JWKS_REFETCH_INTERVAL_SECONDS,
            cacheTtlSeconds: config.JWKS_CACHE_TTL_SECONDS,
            timeoutMs: config.JWKS_TIMEOUT_MS
          }
        }
      : {}),
    cacheSize: config.JWT_VERIFY_CACHE_SIZE
  }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((r) => typeof r === 'string')
}

/** Turns a verified payload into a Principal, refusing tokens without a usable subject. */
export function toPrincipal(payload: Record<string, unknown>): Principal {
  const { sub, sid, roles, jti, exp } = payload
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 128) throw new TokenInvalidError('the sub claim is missing')
  if (sid !== undefined && (typeof sid !== 'string' || sid.length === 0 || sid.length > 128)) {
    throw new TokenInvalidError('the sid claim is malformed')
  }
  if (roles !== undefined && !isStringArray(roles)) throw new TokenInvalidError('the roles claim must be an array of strings')
  return {
    sub,
    ...(sid ? { sid } : {}),
    roles: roles ?? ['user'],
    ...(typeof jti === 'string' ? { jti } : {}),
    ...(typeof exp === 'number' ? { exp } : {})
  }
}

/** Maps fast-jwt's failures onto our three 401 codes. */
export function tokenError(err: unknown): Error {
  const code = err instanceof Error && 'code' in err ? err.code : undefined
  if (err instanceof Error && (code === 'TOKEN_INVALID' || code === 'TOKEN_EXPIRED' || code === 'TOKEN_MISSING')) return err
  if (code === 'FAST_JWT_EXPIRED') return new TokenExpiredError()
  const reason =
    code === 'FAST_JWT_INVALID_ALGORITHM' || code === 'FAST_JWT_MISSING_SIGNATURE'
      ? 'the signing algorithm is not accepted'
      : code === 'FAST_JWT_INVALID_SIGNATURE'
        ? 'the signature does not verify'
        : code === 'FAST_JWT_INVALID_CLAIM_VALUE' || code === 'FAST_JWT_INVALID_CLAIM_TYPE' || code === 'FAST_JWT_MISSING_REQUIRED_CLAIM'
          ? 'the issuer or audience is not accepted'
          : code === 'FAST_JWT_INACTIVE'
            ? 'the token is not valid yet'
            : 'the token is malformed'
  return new TokenInvalidError(reason)
}

export function bearerToken(header: string | undefined): string {
  if (!header) throw new TokenMissingError()
  const match = /^Bearer\s+([A-Za-z0-9_\-.=]+)$/i.exec(header.trim())
  const token = match?.[1]
  if (!token) throw new TokenInvalidError('the Authorization header must be "Bearer <JWT>"')
  return token
}

/**
 * JWT verification. HS256 is pinned to the secret; with a JWKS, RS256/ES256 tokens are verified with the
 * key their kid names, each key pinned to its own algorithm. `none` and algorithm confusion (an HS256
 * token "signed" with a public key) are refused either way.
 */
export const authPlugin = fp<AuthOptions>(
  async (fastify, opts) => {
    await fastify.register(fastifyJwt, {
      secret: opts.secret,
      sign: { algorithm: 'HS256', ...(opts.issuer ? { iss: opts.issuer } : {}), ...(opts.audience ? { aud: opts.audience } : {}) },
      verify: {
        algorithms: ['HS256'],
        clockTolerance: opts.clockToleranceSeconds * 1000,
        ...(opts.issuer ? { allowedIss: opts.issuer } : {}),
        ...(opts.audience ? { allowedAud: opts.audience } : {})
      }
    })

    const jwks = opts.jwks ? await startJwks(fastify, opts, opts.jwks) : null
    fastify.decorate('jwks', jwks)
    const cache = opts.cacheSize ? new VerifiedTokens(opts.cacheSize, opts.clockToleranceSeconds * 1000) : null
    const { verifyToken, verifyTokenAsync } = tokenVerifier((token) => fastify.jwt.verify<Record<string, unknown>>(token), jwks, cache)
    fastify.decorate('verifyToken', verifyToken)
    fastify.decorate('verifyTokenAsync', verifyTokenAsync)

    const authenticate = async (request: FastifyRequest, _reply: FastifyReply) => {
      request.user = await verifyTokenAsync(bearerToken(request.headers.authorization))
    }
    fastify.decorate('authenticate', authenticate)
    fastify.decorate('requireRole', (...roles: Role[]) => async (request: FastifyRequest, reply: FastifyReply) => {
      await authenticate(request, reply)
      if (!request.user.roles.some((r) => roles.some((role) => role === r))) {
        throw new ForbiddenError(`This needs one of the roles: ${roles.join(', ')}`)
      }
    })
  },
  { name: 'platform-auth', fastify: '5.x' }
)

type Verify = (token: string) => Record<string, unknown>

function principalOf(verify: Verify, token: string): Principal {
  let payload: Record<string, unknown>
  try {
    payload = verify(token)
  } catch (err) {
    throw tokenError(err)
  }
  return toPrincipal(payload)
}

/**
 * Token to Principal: HS256 with the secret, or, with a JWKS, the key the token's kid names for the
 * algorithms it serves; answers from the cache when one is given. The async form may fetch an unknown kid.
 */
export function tokenVerifier(hs256: Verify, jwks: JwksKeySet | null, cache: VerifiedTokens | null) {
  const verifyUncached = (token: string): Principal => {
    const header = jwks ? jwtHeader(token) : null
    if (!jwks || !header || !jwks.accepts(header.alg)) return principalOf(hs256, token)
    return principalOf(jwks.keyNow(header).verify, token)
  }
  const verifyUncachedAsync = async (token: string): Promise<Principal> => {
    const header = jwks ? jwtHeader(token) : null
    if (!jwks || !header || !jwks.accepts(header.alg)) return principalOf(hs256, token)
    return principalOf((await jwks.key(header)).verify, token)
  }
  if (!cache) return { verifyToken: verifyUncached, verifyTokenAsync: verifyUncachedAsync }
  return {
    verifyToken: (token: string) => cache.get(token) ?? cache.put(token, verifyUncached(token)),
    verifyTokenAsync: async (token: string) => cache.get(token) ?? cache.put(token, await verifyUncachedAsync(token))
  }
}

/** How long a verified token may be answered from the cache at most (a revoked JWKS key stops working within it). */
const CACHE_MAX_AGE_MS = 60_000

/**
 * Principals of tokens verified recently, keyed by the token itself (the exact string: no collisions),
 * each kept until the token expires (with the clock tolerance) or for a minute at most. Only successes are
 * cached. A hit costs a Map lookup instead of a signature check and two JSON parses.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { principal: Principal; until: number }>()

  constructor(
    private readonly size: number,
    private readonly toleranceMs: number
  ) {}

  /** The last hit, checked first: a busy client sends the same token again and again, and equal strings compare faster than they hash. */
  private lastToken = ''
  private lastEntry: { principal: Principal; until: number } | undefined

  get(token: string): Principal | undefined {
    const entry = token === this.lastToken ? this.lastEntry : this.entries.get(token)
    if (entry === undefined) return undefined
    if (entry.until > Date.now()) {
      this.lastToken = token
      this.lastEntry = entry
      return entry.principal
    }
    this.entries.delete(token)
    this.lastEntry = undefined
    return undefined
  }

  put(token: string, principal: Principal): Principal {
    const now = Date.now()
    const until = Math.min(principal.exp === undefined ? Infinity : principal.exp * 1000 + this.toleranceMs, now + CACHE_MAX_AGE_MS)
    if (this.entries.size >= this.size) {
      const oldest = this.entries.keys().next().value
      if (oldest !== undefined) this.entries.delete(oldest)
    }
    this.entries.set(token, { principal: Object.freeze(principal), until })
    return principal
  }
}

async function startJwks(fastify: FastifyInstance, opts: AuthOptions, jwks: AuthJwksOptions): Promise<JwksKeySet> {
  const keys = new JwksKeySet(
    {
      url: jwks.url,
      algorithms: jwks.algorithms,
      refetchIntervalMs: jwks.refetchIntervalSeconds * 1000,
      refreshIntervalMs: jwks.cacheTtlSeconds * 1000,
      timeoutMs: jwks.timeoutMs,
      ...(jwks.now ? { now: jwks.now } : {}),
      ...(opts.issuer ? { issuer: opts.issuer } : {}),
      ...(opts.audience ? { audience: opts.audience } : {}),
      clockToleranceMs: opts.clockToleranceSeconds * 1000
    },
    fastify.log
  )
  await keys.start()
  fastify.addHook('onClose', async () => keys.close())
  return keys
}

/** The user a request acts for: itself, or with admin role any `?userId=`. */
export function actingUserId(request: FastifyRequest, requested: string | undefined): string {
  if (requested === undefined || requested === request.user.sub) return request.user.sub
  if (request.user.roles.includes('admin')) return requested
  throw new ForbiddenError('Only an admin may act for another user (userId)')
}
