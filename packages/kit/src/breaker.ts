import CircuitBreaker from 'opossum'

export type BreakerState = 'closed' | 'half_open' | 'open'

export interface BreakerOptions {
  /** Names the breaker in logs. */
  name: string
  /** opossum's own timer per call, or false when the call carries its own deadline (an AbortSignal, undici's). */
  timeoutMs: number | false
  /** Opens when the failure share in the window reaches this percentage. */
  errorPercentage: number
  /** Calls in the window before the percentage counts. */
  volume: number
  windowMs: number
  /** Open for this long, then one probe goes through (half-open). */
  resetMs: number
  /** True for an error that says nothing about the dependency's health (a 4xx): it does not count. */
  ignore?: (err: unknown) => boolean
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  onState?: (state: BreakerState) => void
}

/**
 * The platform's circuit breaker: opossum with one reading of its options everywhere (gateway upstreams,
 * the cleanup worker's service calls, chat's assistant), transitions logged and reported.
 */
export function createBreaker<A extends unknown[], R>(action: (...args: A) => Promise<R>, opts: BreakerOptions): CircuitBreaker<A, R> {
  const breaker = new CircuitBreaker(action, {
    name: opts.name,
    timeout: opts.timeoutMs,
    // opossum opens strictly above its threshold; ours opens at it.
    errorThresholdPercentage: opts.errorPercentage - 1e-9,
    volumeThreshold: opts.volume,
    rollingCountTimeout: opts.windowMs,
    rollingCountBuckets: 10,
    resetTimeout: opts.resetMs,
    // Percentiles and snapshots cost a timer and an array per call; nothing reads them.
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    ...(opts.ignore ? { errorFilter: opts.ignore } : {})
  })
  const report = (state: BreakerState) => {
    if (state === 'open') opts.log?.warn({ breaker: opts.name }, 'circuit breaker opened')
    else opts.log?.info({ breaker: opts.name }, state === 'closed' ? 'circuit breaker closed' : 'circuit breaker half-open: one probe goes through')
    opts.onState?.(state)
  }
  breaker.on('open', () => report('open'))
  breaker.on('halfOpen', () => report('half_open'))
  breaker.on('close', () => report('closed'))
  return breaker
}

export function breakerState(breaker: CircuitBreaker): BreakerState {
  return breaker.opened ? 'open' : breaker.halfOpen ? 'half_open' : 'closed'
}
