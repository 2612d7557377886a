import type { BreakerState } from '@platform/contracts'

// Not the kit's createBreaker (opossum): its fire() costs ~2.5 µs a call in promises, events and stats, a tenth of the proxy's per-request budget.

export interface BreakerOptions {
  /** Consecutive failures that open it, whatever the window's volume. */
  failureThreshold: number
  /** …or this failure percentage (reached, not only passed) over the window… */
  errorPercentage: number
  /** …once the window holds this many calls. */
  minVolume: number
  /** The rolling window, kept in ten buckets. */
  windowMs: number
  /** Open for this long, then one probe goes through (half-open). */
  recoveryMs: number
  /** Monotonic ms for Retry-After while open [performance.now]; tests move it. */
  now?: () => number
  onState: (state: BreakerState) => void
}

const BUCKETS = 10

/**
 * One upstream instance's circuit breaker, the same rules opossum applied: closed while calls succeed; open
 * after `failureThreshold` failures in a row or `errorPercentage` of the window's calls (from `minVolume`
 * on); after `recoveryMs` half-open, letting one probe through, whose success closes it and whose failure
 * opens it again. A call is `acquire`d (counted) and then settled with `success` or `failure`.
 */
export class Breaker {
  private current: BreakerState = 'closed'
  private probeTaken = false
  private consecutive = 0
  private openedAt = 0
  private readonly calls = new Uint32Array(BUCKETS)
  private readonly failures = new Uint32Array(BUCKETS)
  private bucket = 0
  private readonly rotation: NodeJS.Timeout
  private recovery: NodeJS.Timeout | null = null
  private readonly now: () => number

  constructor(private readonly opts: BreakerOptions) {
    this.now = opts.now ?? (() => performance.now())
    // The window moves on by a bucket at a time, as opossum's did, rather than reading a clock per call.
    this.rotation = setInterval(() => this.rotate(), opts.windowMs / BUCKETS)
    this.rotation.unref()
  }

  get state(): BreakerState {
    return this.current
  }

  /** Closed, or half-open with its one probe not yet taken. */
  get available(): boolean {
    return this.current === 'closed' || (this.current === 'half_open' && !this.probeTaken)
  }

  /** Counts a call about to be made; false (nothing counted) when the breaker does not let it through. */
  acquire(): boolean {
    if (this.current !== 'closed') {
      if (this.current === 'open' || this.probeTaken) return false
      this.probeTaken = true
    }
    this.calls[this.bucket] = (this.calls[this.bucket] ?? 0) + 1
    return true
  }

  /** The call succeeded, or failed in a way that says nothing about the upstream (a 4xx, the client left). */
  success(): void {
    this.consecutive = 0
    if (this.current === 'half_open') this.transition('closed')
  }

  failure(): void {
    this.failures[this.bucket] = (this.failures[this.bucket] ?? 0) + 1
    if (this.current === 'half_open') return this.open()
    if (++this.consecutive >= this.opts.failureThreshold && this.current === 'closed') return this.open()
    let calls = 0
    let failures = 0
    for (let i = 0; i < BUCKETS; i++) {
      calls += this.calls[i] ?? 0
      failures += this.failures[i] ?? 0
    }
    if (calls >= this.opts.minVolume && (failures / calls) * 100 >= this.opts.errorPercentage) this.open()
  }

  /** Runs one call through the breaker (the paths that are not per request); rejects with EOPENBREAKER when open. */
  async run<T>(call: () => Promise<T>, counts: (err: unknown) => boolean = () => true): Promise<T> {
    if (!this.acquire()) throw Object.assign(new Error('Breaker is open'), { code: 'EOPENBREAKER' })
    try {
      const result = await call()
      this.success()
      return result
    } catch (err) {
      if (counts(err)) this.failure()
      else this.success()
      throw err
    }
  }

  /** Seconds until it lets a probe through (0 when it already would; 1 while the probe is out). */
  retryAfterSeconds(): number {
    if (this.available) return 0
    if (this.current === 'half_open') return 1
    return Math.max(0, (this.openedAt + this.opts.recoveryMs - this.now()) / 1000)
  }

  close(): void {
    clearInterval(this.rotation)
    if (this.recovery) clearTimeout(this.recovery)
  }

  private open(): void {
    if (this.current === 'open') return
    this.openedAt = this.now()
    this.transition('open')
    this.recovery = setTimeout(() => {
      this.recovery = null
      this.probeTaken = false
      this.transition('half_open')
    }, this.opts.recoveryMs)
    this.recovery.unref()
  }

  private transition(to: BreakerState): void {
    if (to === 'closed') {
      this.consecutive = 0
      if (this.recovery) clearTimeout(this.recovery)
      this.recovery = null
    }
    this.current = to
    this.opts.onState(to)
  }

  private rotate(): void {
    this.bucket = (this.bucket + 1) % BUCKETS
    this.calls[this.bucket] = 0
    this.failures[this.bucket] = 0
  }
}
