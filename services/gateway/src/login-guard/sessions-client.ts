import type { Dispatcher } from 'undici'
import { LoginSessionState, type EndLoginSessionBody, type LoginActivityBody } from '@platform/contracts'
import { serviceTokens, withRetryAfter, type SigningKey } from '@platform/kit'
import { Compile } from 'typebox/compile'
import { SessionServiceUnavailableError, concurrentLimit } from '../domain/login-guard-errors.js'
import type { UpstreamService } from '../upstreams/service.js'

export interface SessionsClientOptions {
  /** The sessions service's instances: calls go through the gateway's own pools and breakers. */
  service: UpstreamService
  /** Time the guard gives the sessions service per call. */
  timeoutMs: number
  jwt: SigningKey
  log: { warn(obj: object, msg: string): void }
}

/** Seconds a client is asked to wait when login sessions cannot be checked. */
const RETRY_AFTER_SECONDS = 5

const isLoginSessionState = Compile(LoginSessionState)

/** The sessions service's internal login-session API, as the guard calls it. */
export interface SessionsClient {
  /** The session on first sight of a sid, or when Redis lost it; 429 CONCURRENT_SESSION_LIMIT, or 503 with Retry-After. */
  resolve(requestId: string, body: { sid: string; userId: string; ip: string; userAgent: string }): Promise<LoginSessionState>
  /** Whether the sessions service recorded the end. */
  end(requestId: string, sid: string, body: EndLoginSessionBody): Promise<boolean>
  recordActivity(items: LoginActivityBody['items']): Promise<void>
}

export function createSessionsClient(opts: SessionsClientOptions): SessionsClient {
  const token = serviceTokens({ key: opts.jwt, sub: 'gateway', roles: ['service'], ttlSeconds: 300 })
  const unavailable = () => withRetryAfter(new SessionServiceUnavailableError(), RETRY_AFTER_SECONDS)

  /** One POST; a 5xx or no answer counts against the instance's breaker, like a proxied request's would. */
  const call = async (path: string, body: unknown, requestId: string): Promise<{ status: number; json: unknown }> => {
    const instance = opts.service.pick()
    if (!instance) throw unavailable()
    try {
      const res = await instance.breaker.run(() => post(instance.pool, path, body, requestId))
      return { status: res.statusCode, json: await res.body.json() }
    } catch (err) {
      opts.log.warn({ err, path }, 'sessions service call failed')
      throw unavailable()
    }
  }

  const post = async (pool: Dispatcher, path: string, body: unknown, requestId: string) => {
    const res = await pool.request({
      path,
      method: 'POST',
      headers: { authorization: `Bearer ${token()}`, 'content-type': 'application/json', 'x-request-id': requestId },
      body: JSON.stringify(body),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs
    })
    if (res.statusCode >= 500) {
      await res.body.dump()
      throw new Error(`sessions answered ${res.statusCode}`)
    }
    return res
  }

  return {
    async resolve(requestId, body) {
      const res = await call('/internal/login-sessions/resolve', body, requestId)
      if (res.status === 429) throw concurrentLimit()
      if (res.status !== 200 || !isLoginSessionState.Check(res.json)) throw unavailable()
      return res.json
    },
    async end(requestId, sid, body) {
      const res = await call(`/internal/login-sessions/${encodeURIComponent(sid)}/end`, body, requestId)
      return res.status === 200
    },
    async recordActivity(items) {
      const res = await call('/internal/login-sessions/activity', { items }, 'login-guard-activity')
      if (res.status !== 200) throw new Error(`activity refused: ${res.status}`)
    }
  }
}
