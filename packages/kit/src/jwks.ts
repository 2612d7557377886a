import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { createVerifier, type Algorithm } from 'fast-jwt'
import { TokenInvalidError } from './errors.js'

export interface JwksOptions {
  url: string
  /** Algorithms accepted from this JWKS (never HS*: a public key must not become an HMAC secret). */
  algorithms: string[]
  /** An unknown kid re-fetches at most once per this many ms. */
  refetchIntervalMs: number
  /** Background refresh period (picks up revoked keys); 0 = none. */
  refreshIntervalMs: number
  timeoutMs: number
  issuer?: string
  audience?: string
  clockToleranceMs: number
  /** Monotonic ms for the re-fetch interval [performance.now]; tests move it. */
  now?: () => number
}

interface Log {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

/** One signing key of the set: its algorithm and a verifier pinned to it. */
export interface JwksKey {
  kid: string
  alg: string
  verify: (token: string) => Record<string, unknown>
}

export interface JwtHeader {
  alg?: unknown
  kid?: unknown
}

const PUBLIC_KEY_ALGORITHMS = new Set(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'])
const CURVE_ALGORITHM: Record<string, string> = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }
const MAX_JWKS_BYTES = 256 * 1024

/** The header of a compact JWT, without verifying anything. */
export function jwtHeader(token: string): JwtHeader {
  const dot = token.indexOf('.')
  if (dot > 0) {
    try {
      const header: unknown = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString('utf8'))
      if (header !== null && typeof header === 'object' && !Array.isArray(header)) return header
    } catch {
      // falls through to the error below
    }
  }
  throw new TokenInvalidError('the token is malformed')
}

/** The algorithm a JWK signs with: its `alg`, or the usual one for its key type. */
function algorithmOf(jwk: JsonWebKey & { alg?: string }): string | undefined {
  if (typeof jwk.alg === 'string') return jwk.alg
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC' && typeof jwk.crv === 'string') return CURVE_ALGORITHM[jwk.crv]
  return undefined
}

function keyTypeMatches(kty: unknown, alg: string): boolean {
  return alg.startsWith('ES') ? kty === 'EC' : kty === 'RSA'
}

/**
 * The keys of an identity provider's JWKS, cached by `kid`.
 * An unknown kid triggers at most one fetch per `refetchIntervalMs` (concurrent callers share it), so
 * a flood of random kids costs the provider nothing; a failed fetch keeps the keys already known.
 */
export class JwksKeySet {
  private keys = new Map<string, JwksKey>()
  private readonly accepted: Set<string>
  private lastFetchAt = Number.NEGATIVE_INFINITY
  private inflight: Promise<void> | null = null
  private timer: NodeJS.Timeout | undefined
  private readonly now: () => number
  /** Fetches attempted so far (startup, refreshes and re-fetches). */
  fetches = 0

  constructor(
    private readonly opts: JwksOptions,
    private readonly log: Log
  ) {
    this.accepted = new Set(opts.algorithms.filter((a) => PUBLIC_KEY_ALGORITHMS.has(a)))
    this.now = opts.now ?? (() => performance.now())
  }

  /** Loads the keys once (a provider that is down does not stop the service) and starts refreshing. */
  async start(): Promise<void> {
    await this.refresh()
    if (this.opts.refreshIntervalMs > 0) {
      this.timer = setInterval(() => void this.refresh(), this.opts.refreshIntervalMs)
      this.timer.unref()
    }
  }

  close(): void {
    clearInterval(this.timer)
  }

  /** Whether a token with this `alg` belongs to the JWKS (rather than to the HS256 secret). */
  accepts(alg: unknown): boolean {
    return typeof alg === 'string' && this.accepted.has(alg)
  }

  get size(): number {
    return this.keys.size
  }

  /** The cached key for a header; TOKEN_INVALID when the kid is known but pinned to another algorithm. */
  lookup(header: JwtHeader): JwksKey | undefined {
    let key: JwksKey | undefined
    if (typeof header.kid === 'string') key = this.keys.get(header.kid)
    else if (header.kid === undefined && this.keys.size === 1) key = this.keys.values().next().value
    if (key && key.alg !== header.alg) throw new TokenInvalidError('the signing algorithm is not accepted')
    return key
  }

  /** Sync: only cached keys. An unknown kid schedules a (rate-limited) re-fetch and fails. */
  keyNow(header: JwtHeader): JwksKey {
    const key = this.lookup(header)
    if (key) return key
    void this.refetch()
    throw new TokenInvalidError('the signing key is unknown')
  }

  /** Async: an unknown kid waits for the (rate-limited) re-fetch before failing. */
  async key(header: JwtHeader): Promise<JwksKey> {
    const key = this.lookup(header)
    if (key) return key
    await this.refetch()
    const fresh = this.lookup(header)
    if (fresh) return fresh
    throw new TokenInvalidError('the signing key is unknown')
  }

  /** At most one fetch per refetch interval; callers during a fetch wait for that same fetch. */
  refetch(): Promise<void> {
    if (this.inflight) return this.inflight
    if (this.now() - this.lastFetchAt < this.opts.refetchIntervalMs) return Promise.resolve()
    return this.refresh()
  }

  /** Fetches now (unless a fetch is running); never rejects. */
  refresh(): Promise<void> {
    if (this.inflight) return this.inflight
    this.lastFetchAt = this.now()
    this.fetches++
    this.inflight = this.load()
      .catch((err: unknown) => this.log.warn({ err, url: this.opts.url }, 'JWKS fetch failed; keeping the keys already known'))
      .finally(() => {
        this.inflight = null
      })
    return this.inflight
  }

  private async load(): Promise<void> {
    const res = await fetch(this.opts.url, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.opts.timeoutMs)
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`JWKS answered ${res.status}`)
    if (text.length > MAX_JWKS_BYTES) throw new Error('JWKS document is too large')
    const body = JSON.parse(text) as { keys?: unknown }
    if (!Array.isArray(body.keys)) throw new Error('JWKS document has no "keys" array')
    const next = new Map<string, JwksKey>()
    for (const jwk of body.keys as Array<JsonWebKey & { kid?: unknown; use?: unknown; alg?: string }>) {
      try {
        const key = this.toKey(jwk)
        if (key) next.set(key.kid, key)
      } catch (err) {
        this.log.warn({ err, kid: jwk?.kid }, 'JWKS key skipped')
      }
    }
    this.keys = next
    this.log.info({ url: this.opts.url, kids: [...next.keys()] }, 'JWKS loaded')
  }

  private toKey(jwk: JsonWebKey & { kid?: unknown; use?: unknown; alg?: string }): JwksKey | null {
    if (jwk === null || typeof jwk !== 'object') return null
    if (jwk.use !== undefined && jwk.use !== 'sig') return null
    const alg = algorithmOf(jwk)
    // Symmetric ("oct") keys and algorithms we do not accept never become verifiers.
    if (!alg || !this.accepted.has(alg) || !keyTypeMatches(jwk.kty, alg)) return null
    const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()
    const verify = createVerifier({
      key: pem,
      algorithms: [alg as Algorithm],
      clockTolerance: this.opts.clockToleranceMs,
      ...(this.opts.issuer ? { allowedIss: this.opts.issuer } : {}),
      ...(this.opts.audience ? { allowedAud: this.opts.audience } : {}),
      // A provider's token must name the configured issuer and audience, not merely avoid contradicting them.
      requiredClaims: [...(this.opts.issuer ? ['iss'] : []), ...(this.opts.audience ? ['aud'] : [])]
    }) as (token: string) => Record<string, unknown>
    return { kid: typeof jwk.kid === 'string' ? jwk.kid : '', alg, verify }
  }
}
