/** A fixed rate-limit window: counts from the first hit until `resetAt`. */
export interface RateWindow {
  count: number
  resetAt: number
}

export interface RateDecision {
  allowed: boolean
  /** Milliseconds until the window resets (0 when allowed). */
  retryAfterMs: number
}

/** Counts one hit in the window (starting a new one when it has passed) and decides. */
export function takeFromWindow(w: RateWindow, limit: number, windowMs: number, now: number): RateDecision {
  if (now >= w.resetAt) {
    w.count = 0
    w.resetAt = now + windowMs
  }
  w.count++
  return w.count <= limit ? { allowed: true, retryAfterMs: 0 } : { allowed: false, retryAfterMs: Math.max(1, w.resetAt - now) }
}
