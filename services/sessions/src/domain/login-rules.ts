import type { EndReason } from '@platform/contracts'

export interface LoginLimits {
  inactivitySeconds: number
  maxAgeSeconds: number
}

/** Why an open session must end now, if it must: past its maximum age, or idle too long. */
export function expiryReason(
  s: { createdAt: Date; lastSeenAt: Date },
  now: Date,
  limits: LoginLimits
): Extract<EndReason, 'expired' | 'inactive'> | null {
  if (now.getTime() - s.createdAt.getTime() > limits.maxAgeSeconds * 1000) return 'expired'
  if (now.getTime() - s.lastSeenAt.getTime() > limits.inactivitySeconds * 1000) return 'inactive'
  return null
}
