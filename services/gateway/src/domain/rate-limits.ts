import type { ServiceName } from './route-table.js'

export type RateLimitGroupName = 'reads' | 'writes'

export interface RateLimitGroup {
  name: RateLimitGroupName
  methods: readonly string[]
}

/** Reads; WebSocket upgrades count as one. */
export const Reads: RateLimitGroup = { name: 'reads', methods: ['GET', 'HEAD', 'OPTIONS'] }
export const Writes: RateLimitGroup = { name: 'writes', methods: ['POST', 'PUT', 'PATCH', 'DELETE'] }

/** Proxied routes are registered per group, so each group can count into its own bucket. */
export const RateLimitGroups: readonly RateLimitGroup[] = [Reads, Writes]

export interface RateLimitOverride {
  /** Every service when absent; a service's own entry wins over a general one. */
  service?: ServiceName
  group: RateLimitGroupName
  /** Requests of routes sharing a bucket count together; other buckets are separate. */
  bucket: string
  /** Share of RATE_LIMIT_ANONYMOUS / RATE_LIMIT_AUTHENTICATED this bucket allows per window. */
  share: number
}

/** The per-route overrides, in one table. Everything not listed counts into bucket `all` at the full limits. */
export const RateLimitOverrides: readonly RateLimitOverride[] = [
  // Writes are tighter than reads: 30 % of the limits (300 an hour for a user by default), in their own bucket.
  { group: 'writes', bucket: 'writes', share: 0.3 },
  // Starting a cleanup run is expensive: 1 % (10 an hour by default).
  { service: 'cleanup-worker', group: 'writes', bucket: 'admin-cleanup', share: 0.01 }
]

export interface RateLimit {
  bucket: string
  anonymous: number
  authenticated: number
}

export function rateLimitFor(
  service: ServiceName,
  group: RateLimitGroup,
  limits: { anonymous: number; authenticated: number },
  overrides: readonly RateLimitOverride[] = RateLimitOverrides
): RateLimit {
  const match =
    overrides.find((o) => o.service === service && o.group === group.name) ?? overrides.find((o) => o.service === undefined && o.group === group.name)
  const share = match?.share ?? 1
  return {
    bucket: match?.bucket ?? 'all',
    anonymous: Math.max(1, Math.floor(limits.anonymous * share)),
    authenticated: Math.max(1, Math.floor(limits.authenticated * share))
  }
}
