import type { FastifyRequest } from 'fastify'
import type { EndLoginSessionBody, ViolationReason } from '@platform/contracts'
import type { SigningKey } from '@platform/kit'
import { decide, type GuardLimits, type GuardState } from '../domain/login-guard.js'
import { SessionEndedError, SessionRequiredError, securityViolation } from '../domain/login-guard-errors.js'
import { ActivityQueue, LocalCounts } from './activity.js'
import type { SessionsClient } from './sessions-client.js'
import { WINDOW_MS, type LoginStates, type Touched } from './touch.js'

export interface LoginGuardOptions extends GuardLimits {
  required: boolean
  /** Activity reaches the sessions service at most this often per session. */
  flushSeconds: number
  timeoutMs: number
  jwt: SigningKey
  /** Epoch ms for every inactivity, age, window and batching decision [Date.now]; tests move it. */
  now?: () => number
}

export interface LoginGuardDeps {
  states: LoginStates
  sessions: SessionsClient
  /** gateway_login_guard_rejections_total, by code. */
  rejections: { inc(labels: { code: string }): void }
  log: { warn(obj: object, msg: string): void }
  opts: LoginGuardOptions
}

/** What the guard reads of a request (a FastifyRequest on a proxied route), and the one header it sets. */
export type GuardRequest = Pick<FastifyRequest, 'identity' | 'clientIp' | 'headers' | 'method' | 'url' | 'id'>
export interface GuardReply {
  header(name: string, value: string): unknown
}

export interface LoginGuard {
  /** Passes (undefined, or a promise that resolves) or refuses (throws, or a promise that rejects) one request. */
  check(request: GuardRequest, reply: GuardReply): Promise<void> | undefined
  /** Every second: counts a quiet session still holds here go to Redis, activity to the sessions service. */
  tick(): Promise<void>
  /** Now and then: forgets what idle sessions left behind. */
  sweep(): void
  flush(): Promise<void>
}

/** What the last Redis answer said of a session, kept for RECENT_MS. */
interface Recent extends Touched {
  at: number
  /** Requests sent to Redis whose answer has not come back yet. */
  inflight: number
  /** Requests decided here and not yet counted in Redis. */
  unsent: number
  sentAt: number
}

/**
 * While a session's last answer is this fresh, a request is decided on it plus what this instance
 * counted since, and the counts go to Redis in the background at most every BATCH_MS: a busy
 * session costs a few Redis calls a second instead of one per request. An ending elsewhere is seen
 * within RECENT_MS + BATCH_MS; other replicas' requests count within BATCH_MS.
 */
const RECENT_MS = 500
const BATCH_MS = 100
const LOGIN_SESSIONS_API = '/api/v1/login-sessions'

/** An answer of ours (SESSION_SERVICE_UNAVAILABLE, CONCURRENT_SESSION_LIMIT), as opposed to a Redis failure. */
const isReply = (err: unknown) => err instanceof Error && 'statusCode' in err && typeof err.statusCode === 'number'

/**
 * The login-session guard (issue 6): starts a login session on first sight of a sid, ends it on
 * inactivity, age, a changed user agent or a suspicious request rate, and refuses ended sids.
 * Redis holds the hot state (written by the sessions service, counted here); with Redis down
 * every request asks the sessions service instead and counts in this instance's memory.
 * A request of a session seen within RECENT_MS is decided without waiting for anything.
 */
export function createLoginGuard(deps: LoginGuardDeps): LoginGuard {
  return new Guard(deps)
}

class Guard implements LoginGuard {
  private readonly clock: () => number
  private readonly flushMs: number
  private readonly activity: ActivityQueue
  private readonly local: LocalCounts
  private readonly recent = new Map<string, Recent>()
  /** Users whose login sessions this instance just saw change: decided on Redis's answer alone for a while. */
  private readonly changing = new Map<string, number>()

  constructor(private readonly deps: LoginGuardDeps) {
    this.clock = deps.opts.now ?? Date.now
    this.flushMs = deps.opts.flushSeconds * 1000
    this.activity = new ActivityQueue(deps.sessions, deps.log)
    this.local = new LocalCounts(WINDOW_MS, this.flushMs)
  }

  check(request: GuardRequest, reply: GuardReply): Promise<void> | undefined {
    const principal = request.identity
    if (!principal) return undefined
    const sid = principal.sid
    if (!sid) {
      if (this.deps.opts.required) throw new SessionRequiredError()
      return undefined
    }
    reply.header('x-session-id', sid)
    const now = this.clock()
    // A revoke or logout through this instance, or a new session that may end the oldest, shows at once here.
    if (request.method !== 'GET' && request.url.startsWith(LOGIN_SESSIONS_API)) this.changing.set(principal.sub, now + 2 * RECENT_MS)
    const known = this.deps.states.up && (this.changing.get(principal.sub) ?? 0) < now ? this.recent.get(sid) : undefined
    if (known && now - known.at < RECENT_MS && !known.state.endReason) return this.checkKnown(request, sid, principal.sub, known, now)
    return this.checkRemote(request, sid, principal.sub, now)
  }

  async tick(): Promise<void> {
    const now = this.clock()
    for (const [sid, entry] of this.recent) {
      if (entry.unsent > 0 && entry.inflight === 0 && this.deps.states.up) this.send('login-guard-batch', sid, entry, now)
    }
    await this.activity.flush()
  }

  sweep(): void {
    const now = this.clock()
    const cutoff = now - Math.max(WINDOW_MS, this.flushMs) * 2
    this.local.sweep(cutoff)
    for (const [sid, r] of this.recent) if (r.at < cutoff && r.inflight === 0) this.recent.delete(sid)
    for (const [user, until] of this.changing) if (until < now) this.changing.delete(user)
  }

  flush(): Promise<void> {
    return this.activity.flush()
  }

  /** A session this instance saw within RECENT_MS: decided on that answer plus its own counts since. */
  private checkKnown(request: GuardRequest, sid: string, userId: string, known: Recent, now: number) {
    const base = now - known.window >= WINDOW_MS ? 0 : known.state.windowCount
    known.unsent++
    const counted = base + known.inflight + known.unsent
    if (known.inflight === 0 && now - known.sentAt >= BATCH_MS) this.send(request.id, sid, known, now)
    return this.answer(request, sid, userId, { ...known.state, lastSeenAt: now, windowCount: counted }, 0, true)
  }

  /** Counted in Redis (resolving the sid first when Redis does not know it), or with Redis down by the sessions service. */
  private async checkRemote(request: GuardRequest, sid: string, userId: string, now: number): Promise<void> {
    const { states, sessions } = this.deps
    const resolveBody = { sid, userId, ip: request.clientIp, userAgent: request.headers['user-agent'] ?? '' }
    let redisUp = states.up
    let touched: Touched | null = null
    if (redisUp) {
      try {
        touched = await states.touch(sid, now)
        if (!touched) {
          await sessions.resolve(request.id, resolveBody)
          this.changing.set(userId, now + 2 * RECENT_MS)
          touched = await states.touch(sid, now)
        }
        if (touched) this.recent.set(sid, { ...touched, state: { ...touched.state }, at: now, inflight: 0, unsent: 0, sentAt: now })
      } catch (err) {
        if (isReply(err)) throw err
        redisUp = false
      }
    }
    if (!touched) {
      // Redis is down: the sessions service decides inactivity and age from its record, and this instance counts the request rate.
      const s = await sessions.resolve(request.id, resolveBody)
      const counted = this.local.count(sid, now)
      touched = { state: { ...s, lastSeenAt: now, windowCount: counted.windowCount }, flush: counted.flush, window: now }
    }
    return this.answer(request, sid, userId, touched.state, touched.flush, redisUp)
  }

  /** The rules' verdict on one request, and what follows from it. */
  private answer(request: GuardRequest, sid: string, userId: string, state: GuardState, flush: number, redisUp: boolean): Promise<void> | undefined {
    const now = this.clock()
    const decision = decide(state, { userId, userAgent: request.headers['user-agent'] ?? '', ip: request.clientIp, now }, this.deps.opts)
    if (decision.action === 'allow') {
      if (flush > 0 || decision.ipChanged) this.activity.report(sid, now, flush, decision.ipChanged ? request.clientIp : undefined)
      if (!decision.ipChanged || !redisUp) return undefined
      return this.deps.states.setIp(sid, request.clientIp).then(
        () => undefined,
        (err: unknown) => this.deps.log.warn({ err, sid }, 'could not record the login session IP in Redis')
      )
    }
    if (decision.action === 'ended') {
      const refuse = (): never => {
        this.deps.rejections.inc({ code: 'SESSION_ENDED' })
        throw new SessionEndedError(decision.reason)
      }
      return decision.end ? this.end(request.id, sid, { reason: decision.reason }).then(refuse) : refuse()
    }
    return this.violate(request.id, sid, decision.violation, decision.detail).then(() => {
      throw securityViolation()
    })
  }

  private async end(requestId: string, sid: string, body: EndLoginSessionBody): Promise<void> {
    // A failed call is logged by the client; either way the end is enforced in Redis below.
    const recorded = await this.deps.sessions.end(requestId, sid, body).catch(() => false)
    if (recorded) return
    // Every replica must refuse the sid at once even if the record could not be written yet.
    await this.deps.states
      .markEnded(sid, body.reason)
      .catch((err: unknown) => this.deps.log.warn({ err, sid }, 'could not mark the login session ended in Redis'))
  }

  /** Ends a session for a violation once, however many requests noticed it. */
  private async violate(requestId: string, sid: string, violation: ViolationReason, detail: string): Promise<void> {
    const known = this.recent.get(sid)
    if (known) known.state.endReason = 'security'
    this.deps.rejections.inc({ code: 'SECURITY_VIOLATION' })
    await this.end(requestId, sid, { reason: 'security', violation, detail })
  }

  /** Sends what a fresh session counted here to Redis, and takes in its answer. */
  private send(requestId: string, sid: string, entry: Recent, now: number): void {
    const n = entry.unsent
    if (n === 0) return
    entry.unsent = 0
    entry.inflight += n
    entry.sentAt = now
    this.deps.states
      .touch(sid, now, n)
      // Redis failed: forget the entry, so the next request asks Redis (or falls back) itself.
      .then(
        (r) => this.settle(requestId, sid, entry, r, this.clock()),
        () => this.recent.delete(sid)
      )
      .finally(() => {
        entry.inflight -= n
      })
  }

  /** A background Redis answer: refresh what this instance knows, report activity, catch a rate violation. */
  private settle(requestId: string, sid: string, entry: Recent, r: Touched | null, now: number): void {
    if (!r) return void this.recent.delete(sid)
    const alreadyEnded = entry.state.endReason !== null
    Object.assign(entry, { state: r.state, window: r.window, at: now })
    if (alreadyEnded) entry.state.endReason ??= 'security'
    if (r.flush > 0) this.activity.report(sid, now, r.flush)
    const { requestRate } = this.deps.opts
    if (!alreadyEnded && !r.state.endReason && r.state.windowCount > requestRate) {
      void this.violate(requestId, sid, 'request_rate', `${r.state.windowCount} requests within a minute (limit ${requestRate})`)
    }
  }
}
