import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import { Counter } from 'prom-client'
import { loginStateKey, type EndLoginSessionBody, type LoginActivityBody, type LoginSessionState } from '@platform/contracts'
import { signToken } from '@platform/kit'
import { decide, type GuardLimits, type GuardState } from '../domain/login-guard.js'
import {
  SessionEndedError,
  SessionRequiredError,
  SessionServiceUnavailableError,
  concurrentLimit,
  securityViolation
} from '../domain/login-guard-errors.js'

export interface LoginGuardOptions extends GuardLimits {
  required: boolean
  /** Activity reaches the sessions service at most this often per session. */
  flushSeconds: number
  timeoutMs: number
  jwt: { secret: string; issuer?: string | undefined; audience?: string | undefined }
  /** Epoch ms for every inactivity, age, window and batching decision [Date.now]; tests move it. */
  now?: () => number
}

declare module 'fastify' {
  interface FastifyInstance {
    loginGuard: { hook: preHandlerAsyncHookHandler; flush(): Promise<void> }
  }
}

type Activity = LoginActivityBody['items'][number]

const WINDOW_MS = 60_000

/**
 * One round trip per request: refreshes lastSeen, counts the request in its one-minute window and
 * its flush batch, and returns the state (or nil when Redis does not know the sid).
 */
const TOUCH = `
local s = redis.call('HMGET', KEYS[1], 'userId', 'ua', 'ip', 'createdAt', 'lastSeen', 'ended', 'win', 'winCount', 'pending', 'lastFlush')
if not s[1] then return false end
if s[6] and s[6] ~= '' then return {s[1], s[2], s[3], s[4], s[5], s[6], '0', '0', '0'} end
local now = tonumber(ARGV[1])
local win = tonumber(s[7]) or 0
local count = tonumber(s[8]) or 0
if now - win >= tonumber(ARGV[2]) then
  win = now
  count = 0
  redis.call('HSET', KEYS[1], 'win', win)
end
local inc = tonumber(ARGV[5])
count = count + inc
local pending = (tonumber(s[9]) or 0) + inc
local flush = 0
if now - (tonumber(s[10]) or 0) >= tonumber(ARGV[3]) then
  flush = pending
  pending = 0
  -- The TTL (longer than the inactivity timeout) only needs renewing once per flush interval.
  redis.call('HSET', KEYS[1], 'lastFlush', now)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
end
redis.call('HSET', KEYS[1], 'lastSeen', now, 'winCount', count, 'pending', pending)
return {s[1], s[2], s[3], s[4], s[5], '', tostring(count), tostring(flush), tostring(win)}
`

declare module 'ioredis' {
  interface RedisCommander {
    loginTouch(key: string, now: number, windowMs: number, flushMs: number, ttl: number, requests: number): Promise<string[] | null>
  }
}

interface Touched {
  state: GuardState
  /** Requests to report to the sessions service now (0 until the flush interval has passed). */
  flush: number
  /** Start of the current one-minute window (epoch ms). */
  window: number
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

interface LocalCounter {
  window: number
  count: number
  pending: number
  lastFlush: number
}

/**
 * The login-session guard (issue 6): starts a login session on first sight of a sid, ends it on
 * inactivity, age, a changed user agent or a suspicious request rate, and refuses ended sids.
 * Redis holds the hot state (written by the sessions service, counted here); with Redis down
 * every request asks the sessions service instead and counts in this instance's memory.
 */
export const loginGuardPlugin = fp<LoginGuardOptions>(
  async (fastify, opts) => {
    const { redis } = fastify
    redis.defineCommand('loginTouch', { numberOfKeys: 1, lua: TOUCH })
    const clock = opts.now ?? Date.now
    const ttlSeconds = opts.inactivitySeconds + 60
    const flushMs = opts.flushSeconds * 1000
    const local = new Map<string, LocalCounter>()
    let queue: Activity[] = []
    const violations = new Counter({
      name: 'gateway_login_guard_rejections_total',
      help: 'Requests the login-session guard refused, by code',
      labelNames: ['code'] as const,
      registers: [fastify.metrics]
    })

    // Wall time, not the clock: the sessions service verifies this token's exp against its own.
    let token = { value: '', expires: 0 }
    const serviceToken = () => {
      if (Date.now() > token.expires - 60_000) {
        token = {
          value: signToken({ sub: 'gateway', roles: ['service'], ttlSeconds: 300 }, opts.jwt),
          expires: Date.now() + 300_000
        }
      }
      return token.value
    }

    /** A call to the sessions service's internal API through the gateway's own pool and breaker. */
    const callSessions = async <T>(path: string, body: unknown, requestId: string): Promise<{ status: number; json: T }> => {
      const instance = fastify.upstreams.get('sessions').pick()
      if (!instance) throw new SessionServiceUnavailableError()
      try {
        const res = (await instance.breaker.fire(async () => {
          const r = await instance.pool.request({
            path,
            method: 'POST',
            headers: { authorization: `Bearer ${serviceToken()}`, 'content-type': 'application/json', 'x-request-id': requestId },
            body: JSON.stringify(body),
            headersTimeout: opts.timeoutMs,
            bodyTimeout: opts.timeoutMs
          })
          // A 5xx counts against the instance's breaker, like a proxied request's would.
          if (r.statusCode >= 500) {
            await r.body.dump()
            throw new Error(`sessions answered ${r.statusCode}`)
          }
          return r
        })) as { statusCode: number; body: { json(): Promise<unknown> } }
        return { status: res.statusCode, json: (await res.body.json()) as T }
      } catch (err) {
        fastify.log.warn({ err, path }, 'sessions service call failed')
        throw Object.assign(new SessionServiceUnavailableError(), { retryAfter: 5 })
      }
    }

    const resolve = async (request: FastifyRequest, sid: string, userId: string): Promise<LoginSessionState> => {
      const res = await callSessions<LoginSessionState>(
        '/internal/login-sessions/resolve',
        { sid, userId, ip: request.clientIp, userAgent: request.headers['user-agent'] ?? '' },
        String(request.id)
      )
      if (res.status === 429) throw concurrentLimit()
      if (res.status !== 200) throw Object.assign(new SessionServiceUnavailableError(), { retryAfter: 5 })
      return res.json
    }

    const end = async (requestId: string, sid: string, body: EndLoginSessionBody) => {
      try {
        const res = await callSessions(`/internal/login-sessions/${encodeURIComponent(sid)}/end`, body, requestId)
        if (res.status === 200) return
      } catch {
        // below: enforce it here until the sessions service records it
      }
      // Every replica must refuse the sid at once even if the record could not be written yet.
      await redis.hset(loginStateKey(sid), 'ended', body.reason).catch(() => {})
    }

    /** Counts `requests` (1, or those a fresh session batched) and returns the session's state. */
    const touch = async (sid: string, now: number, requests = 1): Promise<Touched | null> => {
      const r = await redis.loginTouch(loginStateKey(sid), now, WINDOW_MS, flushMs, ttlSeconds, requests)
      if (!r) return null
      return {
        state: {
          userId: r[0] as string,
          userAgent: r[1] as string,
          ip: r[2] as string,
          createdAt: Number(r[3]),
          lastSeenAt: Number(r[4]),
          endReason: (r[5] || null) as GuardState['endReason'],
          windowCount: Number(r[6])
        },
        flush: Number(r[7]),
        window: Number(r[8])
      }
    }

    /** Redis down: count in this instance's memory. */
    const countLocally = (sid: string, now: number): { windowCount: number; flush: number } => {
      let c = local.get(sid)
      if (!c) local.set(sid, (c = { window: now, count: 0, pending: 0, lastFlush: 0 }))
      if (now - c.window >= WINDOW_MS) {
        c.window = now
        c.count = 0
      }
      c.count++
      c.pending++
      let flush = 0
      if (now - c.lastFlush >= flushMs) {
        flush = c.pending
        c.pending = 0
        c.lastFlush = now
      }
      return { windowCount: c.count, flush }
    }

    const recent = new Map<string, Recent>()
    /** Users whose login sessions this instance just saw change: decided on Redis's answer alone for a while. */
    const changing = new Map<string, number>()
    const LOGIN_SESSIONS_API = '/api/v1/login-sessions'

    const report = (sid: string, now: number, requests: number, ip?: string) => {
      queue.push({ sid, lastSeenAt: now, requests, ...(ip ? { ip } : {}) })
    }

    /** Ends a session for a violation once, however many requests noticed it. */
    const violate = async (requestId: string, sid: string, violation: 'user_agent_changed' | 'request_rate', detail: string) => {
      const known = recent.get(sid)
      if (known) known.state.endReason = 'security'
      violations.inc({ code: 'SECURITY_VIOLATION' })
      await end(requestId, sid, { reason: 'security', violation, detail })
    }

    /** A background Redis answer: refresh what this instance knows, report activity, catch a rate violation. */
    const settle = (requestId: string, sid: string, entry: Recent, r: Touched | null, now: number) => {
      if (!r) return void recent.delete(sid)
      const alreadyEnded = entry.state.endReason !== null
      Object.assign(entry, { state: r.state, window: r.window, at: now })
      if (alreadyEnded) entry.state.endReason ??= 'security'
      if (r.flush > 0) report(sid, now, r.flush)
      if (!alreadyEnded && !r.state.endReason && r.state.windowCount > opts.requestRate) {
        void violate(requestId, sid, 'request_rate', `${r.state.windowCount} requests within a minute (limit ${opts.requestRate})`)
      }
    }

    /** Sends what a fresh session counted here to Redis, and takes in its answer. */
    const send = (requestId: string, sid: string, entry: Recent, now: number) => {
      const n = entry.unsent
      if (n === 0) return
      entry.unsent = 0
      entry.inflight += n
      entry.sentAt = now
      touch(sid, now, n)
        .then((r) => settle(requestId, sid, entry, r, clock()), () => recent.delete(sid))
        .finally(() => {
          entry.inflight -= n
        })
    }

    const decideAndAnswer = async (request: FastifyRequest, sid: string, userId: string, touched: Touched, redisUp: boolean) => {
      const now = clock()
      const decision = decide(touched.state, { userId, userAgent: request.headers['user-agent'] ?? '', ip: request.clientIp, now }, opts)
      if (decision.action === 'allow') {
        if (touched.flush > 0 || decision.ipChanged) report(sid, now, touched.flush, decision.ipChanged ? request.clientIp : undefined)
        if (decision.ipChanged && redisUp) {
          touched.state.ip = request.clientIp
          await redis.hset(loginStateKey(sid), 'ip', request.clientIp).catch(() => {})
        }
        return
      }
      if (decision.action === 'ended') {
        if (decision.end) await end(String(request.id), sid, { reason: decision.reason })
        violations.inc({ code: 'SESSION_ENDED' })
        throw new SessionEndedError(decision.reason)
      }
      await violate(String(request.id), sid, decision.violation, decision.detail)
      throw securityViolation()
    }

    const hook = async (request: FastifyRequest, reply: FastifyReply) => {
      const principal = request.identity
      if (!principal) return
      const sid = principal.sid
      if (!sid) {
        if (opts.required) throw new SessionRequiredError()
        return
      }
      reply.header('x-session-id', sid)
      const now = clock()
      let redisUp = redis.status === 'ready'

      // A revoke or logout through this instance, or a new session that may end the oldest, shows at once here.
      if (request.method !== 'GET' && request.url.startsWith(LOGIN_SESSIONS_API)) changing.set(principal.sub, now + 2 * RECENT_MS)
      const settled = (changing.get(principal.sub) ?? 0) < now
      const known = redisUp && settled ? recent.get(sid) : undefined
      if (known && now - known.at < RECENT_MS && !known.state.endReason) {
        const base = now - known.window >= WINDOW_MS ? 0 : known.state.windowCount
        known.unsent++
        const counted = base + known.inflight + known.unsent
        if (known.inflight === 0 && now - known.sentAt >= BATCH_MS) send(String(request.id), sid, known, now)
        return decideAndAnswer(request, sid, principal.sub, { state: { ...known.state, lastSeenAt: now, windowCount: counted }, flush: 0, window: known.window }, true)
      }

      let touched: Touched | null = null
      if (redisUp) {
        try {
          touched = await touch(sid, now)
          if (!touched) {
            await resolve(request, sid, principal.sub)
            changing.set(principal.sub, now + 2 * RECENT_MS)
            touched = await touch(sid, now)
          }
          if (touched) recent.set(sid, { ...touched, state: { ...touched.state }, at: now, inflight: 0, unsent: 0, sentAt: now })
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode) throw err
          redisUp = false
        }
      }
      if (!touched) {
        // Redis is down: the sessions service decides inactivity and age from its record, and
        // this instance counts the request rate on its own.
        const s = await resolve(request, sid, principal.sub)
        const counted = countLocally(sid, now)
        touched = { state: { ...s, lastSeenAt: now, windowCount: counted.windowCount }, flush: counted.flush, window: now }
      }
      return decideAndAnswer(request, sid, principal.sub, touched, redisUp)
    }

    const flush = async () => {
      if (queue.length === 0) return
      const items = queue.splice(0, 5000)
      try {
        const res = await callSessions('/internal/login-sessions/activity', { items }, 'login-guard-activity')
        if (res.status !== 200) throw new Error(`activity refused: ${res.status}`)
      } catch (err) {
        // Keep them for the next tick, bounded: activity is statistics, never worth unbounded memory.
        queue = [...items, ...queue].slice(0, 20_000)
        fastify.log.warn({ err, items: items.length }, 'could not record login-session activity; will retry')
      }
    }
    const timer = setInterval(() => {
      // Counts a quiet session still holds here reach Redis within a second.
      const now = clock()
      for (const [sid, entry] of recent) {
        if (entry.unsent > 0 && entry.inflight === 0 && redis.status === 'ready') send('login-guard-batch', sid, entry, now)
      }
      void flush()
    }, 1000)
    timer.unref()
    // Forget idle local counters now and then (they only matter while Redis is down).
    const sweeper = setInterval(() => {
      const now = clock()
      const cutoff = now - Math.max(WINDOW_MS, flushMs) * 2
      for (const [sid, c] of local) if (c.window < cutoff && c.lastFlush < cutoff) local.delete(sid)
      for (const [sid, r] of recent) if (r.at < cutoff && r.inflight === 0) recent.delete(sid)
      for (const [user, until] of changing) if (until < now) changing.delete(user)
    }, 60_000)
    sweeper.unref()

    fastify.decorate('loginGuard', { hook, flush })
    fastify.addHook('onClose', async () => {
      clearInterval(timer)
      clearInterval(sweeper)
      await flush()
    })
  },
  { name: 'login-guard', dependencies: ['platform-redis', 'upstreams'] }
)
