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
if s[6] and s[6] ~= '' then return {s[1], s[2], s[3], s[4], s[5], s[6], '0', '0'} end
local now = tonumber(ARGV[1])
local win = tonumber(s[7]) or 0
local count = tonumber(s[8]) or 0
if now - win >= tonumber(ARGV[2]) then win = now; count = 0 end
count = count + 1
local pending = (tonumber(s[9]) or 0) + 1
local lastFlush = tonumber(s[10]) or 0
local flush = 0
if now - lastFlush >= tonumber(ARGV[3]) then flush = pending; pending = 0; lastFlush = now end
redis.call('HSET', KEYS[1], 'lastSeen', now, 'win', win, 'winCount', count, 'pending', pending, 'lastFlush', lastFlush)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {s[1], s[2], s[3], s[4], s[5], '', tostring(count), tostring(flush)}
`

declare module 'ioredis' {
  interface RedisCommander {
    loginTouch(key: string, now: number, windowMs: number, flushMs: number, ttl: number): Promise<string[] | null>
  }
}

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

    const end = async (request: FastifyRequest, sid: string, body: EndLoginSessionBody) => {
      try {
        const res = await callSessions(`/internal/login-sessions/${encodeURIComponent(sid)}/end`, body, String(request.id))
        if (res.status === 200) return
      } catch {
        // below: enforce it here until the sessions service records it
      }
      // Every replica must refuse the sid at once even if the record could not be written yet.
      await redis.hset(loginStateKey(sid), 'ended', body.reason).catch(() => {})
    }

    const touch = async (sid: string, now: number): Promise<{ state: GuardState; flush: number } | null> => {
      const r = await redis.loginTouch(loginStateKey(sid), now, WINDOW_MS, flushMs, ttlSeconds)
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
        flush: Number(r[7])
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

    const hook = async (request: FastifyRequest, reply: FastifyReply) => {
      const principal = request.identity
      if (!principal) return
      const sid = principal.sid
      if (!sid) {
        if (opts.required) throw new SessionRequiredError()
        return
      }
      reply.header('x-session-id', sid)
      const now = Date.now()
      let touched: { state: GuardState; flush: number } | null = null
      let redisUp = redis.status === 'ready'
      if (redisUp) {
        try {
          touched = await touch(sid, now)
          if (!touched) {
            await resolve(request, sid, principal.sub)
            touched = await touch(sid, now)
          }
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
        touched = { state: { ...s, lastSeenAt: now, windowCount: counted.windowCount }, flush: counted.flush }
      }

      const decision = decide(
        touched.state,
        { userId: principal.sub, userAgent: request.headers['user-agent'] ?? '', ip: request.clientIp, now },
        opts
      )
      if (decision.action === 'allow') {
        if (touched.flush > 0 || decision.ipChanged) {
          queue.push({
            sid,
            lastSeenAt: now,
            requests: touched.flush,
            ...(decision.ipChanged ? { ip: request.clientIp } : {})
          })
          if (decision.ipChanged && redisUp) await redis.hset(loginStateKey(sid), 'ip', request.clientIp).catch(() => {})
        }
        return
      }
      if (decision.action === 'ended') {
        if (decision.end) await end(request, sid, { reason: decision.reason })
        violations.inc({ code: 'SESSION_ENDED' })
        throw new SessionEndedError(decision.reason)
      }
      await end(request, sid, { reason: 'security', violation: decision.violation, detail: decision.detail })
      violations.inc({ code: 'SECURITY_VIOLATION' })
      throw securityViolation()
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
    const timer = setInterval(() => void flush(), 1000)
    timer.unref()
    // Forget idle local counters now and then (they only matter while Redis is down).
    const sweeper = setInterval(() => {
      const cutoff = Date.now() - Math.max(WINDOW_MS, flushMs) * 2
      for (const [sid, c] of local) if (c.window < cutoff && c.lastFlush < cutoff) local.delete(sid)
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
