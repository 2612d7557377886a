import fp from 'fastify-plugin'
import CircuitBreaker from 'opossum'
import { signToken, type SigningKey } from '@platform/kit'
import { Targets, type Target } from '../domain/kinds.js'
import { retryDelay } from '../domain/schedule.js'

export interface ServiceClientOptions {
  urls: Record<Target, string>
  signing: SigningKey
  tokenTtlSeconds: number
  timeoutMs: number
  retries: number
  retryBaseMs: number
  retryMaxMs: number
  breaker: { errorPercentage: number; minVolume: number; resetMs: number }
  /** Waits before a retry [a timer that shutdown cuts short]; tests record the waits instead. */
  sleep?: (ms: number) => Promise<void>
}

/** A call to an owning service that did not answer 2xx. */
export class UpstreamError extends Error {
  constructor(
    readonly target: Target,
    message: string,
    /** The HTTP status, when the service answered at all. */
    readonly status: number | null,
    /** Worth another try: no answer, a timeout, a 5xx, 408, 429 or an open breaker. */
    readonly retryable: boolean
  ) {
    super(message)
    this.name = 'UpstreamError'
  }
}

export interface CallOptions {
  method?: 'GET' | 'POST'
  body?: object
  timeoutMs?: number
  /** Overrides the configured retry count (stats are asked once). */
  retries?: number
}

export interface ServiceClient {
  /** Calls a service with a fresh service token, through its breaker, retrying with exponential backoff. */
  call(target: Target, path: string, opts?: CallOptions): Promise<unknown>
  breakerState(target: Target): 'closed' | 'open' | 'half_open'
}

declare module 'fastify' {
  interface FastifyInstance {
    services: ServiceClient
  }
}

type Request = (target: Target, path: string, method: string, body: object | undefined, timeoutMs: number) => Promise<unknown>

const retryableStatus = (status: number) => status >= 500 || status === 408 || status === 429

/** The service token: minted on first use and again once half its lifetime has passed. */
function tokenSource(signing: SigningKey, ttlSeconds: number): () => string {
  let token = ''
  let renewAt = 0
  return () => {
    if (Date.now() >= renewAt) {
      token = signToken({ sub: 'cleanup-worker', roles: ['service'], ttlSeconds }, signing)
      renewAt = Date.now() + (ttlSeconds * 1000) / 2
    }
    return token
  }
}

export const serviceClientPlugin = fp<ServiceClientOptions>(
  async (fastify, opts) => {
    const token = tokenSource(opts.signing, opts.tokenTtlSeconds)
    const closing = new AbortController()

    const request: Request = async (target, path, method, body, timeoutMs) => {
      let res: Response
      try {
        res = await fetch(new URL(path, opts.urls[target]), {
          method,
          headers: { authorization: `Bearer ${token()}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(timeoutMs)
        })
      } catch (err) {
        const timedOut = (err as Error).name === 'TimeoutError'
        throw new UpstreamError(target, timedOut ? `${target} did not answer within ${timeoutMs} ms` : `${target} is unreachable`, null, true)
      }
      const text = await res.text().catch(() => '')
      if (!res.ok) {
        let code = ''
        try {
          code = String((JSON.parse(text) as { code?: unknown }).code ?? '')
        } catch {
          // not our error shape: the status says enough
        }
        throw new UpstreamError(target, `${target} answered ${res.status}${code ? ` ${code}` : ''}`, res.status, retryableStatus(res.status))
      }
      try {
        return JSON.parse(text) as unknown
      } catch {
        throw new UpstreamError(target, `${target} answered with a body that is not JSON`, res.status, false)
      }
    }

    const breakers = new Map(
      Targets.map((target) => {
        const breaker = new CircuitBreaker(request, {
          name: target,
          timeout: false, // each request has its own AbortSignal timeout
          errorThresholdPercentage: opts.breaker.errorPercentage,
          volumeThreshold: opts.breaker.minVolume,
          resetTimeout: opts.breaker.resetMs,
          rollingCountTimeout: 60_000,
          // A 4xx is the caller's mistake (or a route not there yet): it says nothing about the service's health.
          errorFilter: (err: unknown) => err instanceof UpstreamError && !err.retryable
        })
        breaker.on('open', () => fastify.log.warn({ target }, 'circuit opened'))
        breaker.on('halfOpen', () => fastify.log.info({ target }, 'circuit half-open'))
        breaker.on('close', () => fastify.log.info({ target }, 'circuit closed'))
        return [target, breaker] as const
      })
    )

    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms)
        closing.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve()
        }, { once: true })
      })

    const fire = async (target: Target, path: string, method: string, body: object | undefined, timeoutMs: number) => {
      try {
        return await breakers.get(target)!.fire(target, path, method, body, timeoutMs)
      } catch (err) {
        if ((err as { code?: string }).code === 'EOPENBREAKER') {
          throw new UpstreamError(target, `${target} is failing: its circuit is open`, null, true)
        }
        throw err
      }
    }

    const client: ServiceClient = {
      async call(target, path, { method = 'POST', body, timeoutMs = opts.timeoutMs, retries = opts.retries } = {}) {
        for (let attempt = 0; ; attempt++) {
          try {
            return await fire(target, path, method, body, timeoutMs)
          } catch (err) {
            const retryable = err instanceof UpstreamError && err.retryable
            // While shutting down no new attempt starts: BullMQ retries the job later, elsewhere.
            if (!retryable || attempt >= retries || closing.signal.aborted) throw err
            const delay = retryDelay(attempt + 1, opts.retryBaseMs, opts.retryMaxMs)
            fastify.log.warn({ target, path, attempt: attempt + 1, delayMs: delay, reason: (err as Error).message }, 'service call failed; retrying')
            await (opts.sleep ?? sleep)(delay)
          }
        }
      },
      breakerState(target) {
        const b = breakers.get(target)!
        return b.opened ? 'open' : b.halfOpen ? 'half_open' : 'closed'
      }
    }
    fastify.decorate('services', client)

    fastify.addHook('preClose', async () => closing.abort())
    fastify.addHook('onClose', async () => {
      for (const b of breakers.values()) b.shutdown()
    })
  },
  { name: 'service-client', fastify: '5.x' }
)
