import type { LoginActivityBody } from '@platform/contracts'
import type { SessionsClient } from './sessions-client.js'

type Activity = LoginActivityBody['items'][number]

/** At most this many items per call (the sessions service's limit)… */
const BATCH = 5000
/** …and at most this many kept while it cannot be reached: activity is statistics, never worth unbounded memory. */
const KEPT = 20_000

/** What the guard saw of each session (last request, request count, a new IP), sent to the sessions service in batches. */
export class ActivityQueue {
  private items: Activity[] = []

  constructor(
    private readonly sessions: SessionsClient,
    private readonly log: { warn(obj: object, msg: string): void }
  ) {}

  report(sid: string, now: number, requests: number, ip?: string): void {
    this.items.push({ sid, lastSeenAt: now, requests, ...(ip ? { ip } : {}) })
  }

  async flush(): Promise<void> {
    if (this.items.length === 0) return
    const items = this.items.splice(0, BATCH)
    try {
      await this.sessions.recordActivity(items)
    } catch (err) {
      // Kept for the next tick, bounded.
      this.items = [...items, ...this.items].slice(0, KEPT)
      this.log.warn({ err, items: items.length }, 'could not record login-session activity; will retry')
    }
  }
}

interface LocalCounter {
  window: number
  count: number
  pending: number
  lastFlush: number
}

/** Redis down: each session's one-minute window and flush batch, counted in this instance's memory. */
export class LocalCounts {
  private readonly counters = new Map<string, LocalCounter>()

  constructor(
    private readonly windowMs: number,
    private readonly flushMs: number
  ) {}

  count(sid: string, now: number): { windowCount: number; flush: number } {
    let c = this.counters.get(sid)
    if (!c) this.counters.set(sid, (c = { window: now, count: 0, pending: 0, lastFlush: 0 }))
    if (now - c.window >= this.windowMs) {
      c.window = now
      c.count = 0
    }
    c.count++
    c.pending++
    let flush = 0
    if (now - c.lastFlush >= this.flushMs) {
      flush = c.pending
      c.pending = 0
      c.lastFlush = now
    }
    return { windowCount: c.count, flush }
  }

  /** Forgets counters idle since `cutoff` (they only matter while Redis is down). */
  sweep(cutoff: number): void {
    for (const [sid, c] of this.counters) if (c.window < cutoff && c.lastFlush < cutoff) this.counters.delete(sid)
  }
}
