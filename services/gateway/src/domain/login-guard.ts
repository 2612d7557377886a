import type { EndReason, ViolationReason } from '@platform/contracts'

/** What the guard knows of a login session at the moment of a request. */
export interface GuardState {
  userId: string
  userAgent: string
  ip: string
  createdAt: number
  /** When the previous request was seen (epoch ms). */
  lastSeenAt: number
  endReason: EndReason | null
  /** Requests of this session in the current one-minute window, this one included. */
  windowCount: number
}

export interface GuardLimits {
  inactivitySeconds: number
  maxAgeSeconds: number
  /** More requests than this in a minute is a violation. */
  requestRate: number
}

export type GuardDecision =
  | { action: 'allow'; ipChanged: boolean }
  /** Refuse with 401 SESSION_ENDED; `end` says the session must be ended now with that reason. */
  | { action: 'ended'; reason: EndReason; end: boolean }
  /** Refuse with 403 SECURITY_VIOLATION and end the session (reason security). */
  | { action: 'violation'; violation: ViolationReason; detail: string }

/** The guard's rules, in order: ended, wrong owner, max age, inactivity, user agent, request rate. */
export function decide(
  state: GuardState,
  request: { userId: string; userAgent: string; ip: string; now: number },
  limits: GuardLimits
): GuardDecision {
  if (state.endReason) return { action: 'ended', reason: state.endReason, end: false }
  if (state.userId !== request.userId) {
    return { action: 'violation', violation: 'user_agent_changed', detail: 'the session belongs to another user' }
  }
  if (request.now - state.createdAt > limits.maxAgeSeconds * 1000) return { action: 'ended', reason: 'expired', end: true }
  if (request.now - state.lastSeenAt > limits.inactivitySeconds * 1000) return { action: 'ended', reason: 'inactive', end: true }
  if (request.userAgent !== state.userAgent) {
    return { action: 'violation', violation: 'user_agent_changed', detail: 'the user agent changed during the session' }
  }
  if (state.windowCount > limits.requestRate) {
    return {
      action: 'violation',
      violation: 'request_rate',
      detail: `${state.windowCount} requests within a minute (limit ${limits.requestRate})`
    }
  }
  return { action: 'allow', ipChanged: request.ip !== state.ip }
}
