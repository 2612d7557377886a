import { randomUUID } from 'node:crypto'
import { createSigner } from 'fast-jwt'

export interface TokenClaims {
  sub: string
  roles?: string[]
  sid?: string
  ttlSeconds?: number
  [claim: string]: unknown
}

export interface SigningKey {
  secret: string
  issuer?: string | undefined
  audience?: string | undefined
}

/** Signs an HS256 JWT: development tokens, the cleanup worker's service tokens, and tests. */
export function signToken(claims: TokenClaims, key: SigningKey): string {
  const { ttlSeconds = 3600, ...rest } = claims
  const sign = createSigner({
    key: key.secret,
    algorithm: 'HS256',
    expiresIn: ttlSeconds * 1000,
    jti: randomUUID(),
    ...(key.issuer ? { iss: key.issuer } : {}),
    ...(key.audience ? { aud: key.audience } : {})
  })
  return sign(rest)
}

export interface ServiceTokenOptions {
  key: SigningKey
  sub: string
  roles: string[]
  ttlSeconds: number
  /** Epoch ms [Date.now]. Wall time: the receiving service checks `exp` against its own clock. */
  now?: () => number
}

/** A service's own token for calls to another service, signed again once a fifth of its life is left. */
export function serviceTokens(opts: ServiceTokenOptions): () => string {
  const now = opts.now ?? Date.now
  const renewBeforeMs = (opts.ttlSeconds * 1000) / 5
  let token = { value: '', expiresAt: 0 }
  return () => {
    if (now() > token.expiresAt - renewBeforeMs) {
      token = {
        value: signToken({ sub: opts.sub, roles: opts.roles, ttlSeconds: opts.ttlSeconds }, opts.key),
        expiresAt: now() + opts.ttlSeconds * 1000
      }
    }
    return token.value
  }
}

/** "90s", "15m", "1h", "7d" or plain seconds. */
export function parseTtl(ttl: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(ttl.trim())
  if (!m) throw new Error(`invalid --ttl "${ttl}": use e.g. 90s, 15m, 1h, 7d`)
  const units: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }
  return Number(m[1]) * (units[m[2] ?? ''] ?? 1)
}
