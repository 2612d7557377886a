import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import type { Role } from '@platform/contracts'
import { ForbiddenError, TokenExpiredError, TokenInvalidError, TokenMissingError } from '../errors.js'

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
    /** Verifies a raw token (WebSocket upgrades); throws TOKEN_* errors. */
    verifyToken: (token: string) => Principal
  }
}

export interface AuthOptions {
  secret: string
  issuer?: string
  audience?: string
  clockToleranceSeconds: number
}

/** Turns a verified payload into a Principal, refusing tokens without a usable subject. */
export function toPrincipal(payload: Record<string, unknown>): Principal {
  const { sub, sid, roles, jti, exp } = payload
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > 128) throw new TokenInvalidError('the sub claim is missing')
  if (sid !== undefined && (typeof sid !== 'string' || sid.length === 0 || sid.length > 128)) {
    throw new TokenInvalidError('the sid claim is malformed')
  }
  if (roles !== undefined && (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string'))) {
    throw new TokenInvalidError('the roles claim must be an array of strings')
  }
  return {
    sub,
    ...(sid ? { sid } : {}),
    roles: (roles as string[] | undefined) ?? ['user'],
    ...(typeof jti === 'string' ? { jti } : {}),
    ...(typeof exp === 'number' ? { exp } : {})
  }
}

/** Maps fast-jwt's failures onto our three 401 codes. */
export function tokenError(err: unknown): Error {
  const code = (err as { code?: string }).code
  if (code === 'TOKEN_INVALID' || code === 'TOKEN_EXPIRED' || code === 'TOKEN_MISSING') return err as Error
  if (code === 'FAST_JWT_EXPIRED') return new TokenExpiredError()
  const reason =
    code === 'FAST_JWT_INVALID_ALGORITHM' || code === 'FAST_JWT_MISSING_SIGNATURE'
      ? 'the signing algorithm is not accepted'
      : code === 'FAST_JWT_INVALID_SIGNATURE'
        ? 'the signature does not verify'
        : code === 'FAST_JWT_INVALID_CLAIM_VALUE' || code === 'FAST_JWT_INVALID_CLAIM_TYPE'
          ? 'the issuer or audience is not accepted'
          : code === 'FAST_JWT_INACTIVE'
            ? 'the token is not valid yet'
            : 'the token is malformed'
  return new TokenInvalidError(reason)
}

export function bearerToken(header: string | undefined): string {
  if (!header) throw new TokenMissingError()
  const match = /^Bearer\s+([A-Za-z0-9_\-.=]+)$/i.exec(header.trim())
  if (!match) throw new TokenInvalidError('the Authorization header must be "Bearer <JWT>"')
  return match[1] as string
}

/** JWT verification (HS256 pinned: `none` and algorithm confusion are refused). */
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

    const verifyToken = (token: string): Principal => {
      let payload: Record<string, unknown>
      try {
        payload = fastify.jwt.verify<Record<string, unknown>>(token)
      } catch (err) {
        throw tokenError(err)
      }
      return toPrincipal(payload)
    }
    fastify.decorate('verifyToken', verifyToken)

    const authenticate = async (request: FastifyRequest, _reply: FastifyReply) => {
      request.user = verifyToken(bearerToken(request.headers.authorization))
    }
    fastify.decorate('authenticate', authenticate)
    fastify.decorate('requireRole', (...roles: Role[]) => async (request: FastifyRequest, reply: FastifyReply) => {
      await authenticate(request, reply)
      if (!request.user.roles.some((r) => (roles as string[]).includes(r))) {
        throw new ForbiddenError(`This needs one of the roles: ${roles.join(', ')}`)
      }
    })
  },
  { name: 'platform-auth', fastify: '5.x' }
)

/** The user a request acts for: itself, or with admin role any `?userId=`. */
export function actingUserId(request: FastifyRequest, requested: string | undefined): string {
  if (requested === undefined || requested === request.user.sub) return request.user.sub
  if (request.user.roles.includes('admin')) return requested
  throw new ForbiddenError('Only an admin may act for another user (userId)')
}
