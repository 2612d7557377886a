import type { Redis } from 'ioredis'
import { EndReason, loginStateKey } from '@platform/contracts'
import { Compile } from 'typebox/compile'
import type { GuardState } from '../domain/login-guard.js'

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

/** A login session's one-minute window: more requests than SUSPICIOUS_REQUEST_RATE in it is a violation. */
export const WINDOW_MS = 60_000

export interface Touched {
  state: GuardState
  /** Requests to report to the sessions service now (0 until the flush interval has passed). */
  flush: number
  /** Start of the current one-minute window (epoch ms). */
  window: number
}

const isEndReason = Compile(EndReason)

/** The login state in Redis: written by the sessions service, counted and read here. */
export class LoginStates {
  constructor(
    private readonly redis: Redis,
    private readonly flushMs: number,
    private readonly ttlSeconds: number
  ) {
    redis.defineCommand('loginTouch', { numberOfKeys: 1, lua: TOUCH })
  }

  get up(): boolean {
    return this.redis.status === 'ready'
  }

  /** Counts `requests` (1, or those a fresh session batched) and returns the session's state; null when Redis does not know the sid. */
  async touch(sid: string, now: number, requests = 1): Promise<Touched | null> {
    const r = await this.redis.loginTouch(loginStateKey(sid), now, WINDOW_MS, this.flushMs, this.ttlSeconds, requests)
    if (!r) return null
    const ended = r[5] ?? ''
    return {
      state: {
        userId: r[0] ?? '',
        userAgent: r[1] ?? '',
        ip: r[2] ?? '',
        createdAt: Number(r[3]),
        lastSeenAt: Number(r[4]),
        // Whatever Redis holds that is not a known reason still ends the session.
        endReason: ended === '' ? null : isEndReason.Check(ended) ? ended : 'security',
        windowCount: Number(r[6])
      },
      flush: Number(r[7]),
      window: Number(r[8])
    }
  }

  setIp(sid: string, ip: string): Promise<unknown> {
    return this.redis.hset(loginStateKey(sid), 'ip', ip)
  }

  /** Every replica refuses the sid from now on, whatever the sessions service has recorded yet. */
  markEnded(sid: string, reason: string): Promise<unknown> {
    return this.redis.hset(loginStateKey(sid), 'ended', reason)
  }
}
