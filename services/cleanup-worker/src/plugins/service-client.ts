import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { breakerState, createBreaker, serviceTokens, type BreakerState, type SigningKey } from '@platform/kit'
import type { Target } from '../domain/kinds.js'
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
  breakerState(target: Target): BreakerState
}

/** The client as its owner holds it: it also stops retrying and closes. */
export interface OwnedServiceClient extends ServiceClient {
  /** No new attempt starts from now on, and a wait before one ends at once: BullMQ retries the job later. */
  stopRetrying(): void
  /** Shuts the breakers down. */
  close(): void
}

declare module 'fastify' {
  interface FastifyInstance {
    services: ServiceClient
  }
}

export interface ServiceClientDeps extends Omit<ServiceClientOptions, 'signing' | 'tokenTtlSeconds'> {
  /** The bearer token each request carries. */
  token: () => string
  log: Pick<FastifyBaseLogger, 'info' | 'warn'>
}

/** What a failed call said, for logs and the run history. */
export const reasonOf = (err: unknown): string => (err instanceof Error ? err.message : String(err))

const retryableStatus = (status: number) => status >= 500 || status === 408 || status === 429

/** The `code` of a body in the platform's error shape; empty for anything else (the status says enough). */
function errorCode(text: string): string {
  try {
    const body: unknown = JSON.parse(text)
    return typeof body === 'object' && body !== null && 'code' in body && typeof body.code === 'string' ? body.code : ''
  } catch {
    return ''
  }
}

interface Attempt {
  path: string
  method: string
  body: object | undefined
  timeoutMs: number
}

/** One HTTP request to an owning service: its JSON reply, or an UpstreamError that says why not. */
async function request(target: Target, baseUrl: string, token: string, { path, method, body, timeoutMs }: Attempt): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(new URL(path, baseUrl), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs)
    })
  } catch (err) {
    const timedOut = err instanceof Error && err.name === 'TimeoutError'
    throw new UpstreamError(target, timedOut ? `${target} did not answer within ${timeoutMs} ms` : `${target} is unreachable`, null, true)
  }
  // A body cut off mid-read counts as empty: the status, or the JSON check below, says what went wrong.
  const text = await res.text().catch(() => '')
  if (!res.ok) {
    const code = errorCode(text)
    throw new UpstreamError(target, `${target} answered ${res.status}${code ? ` ${code}` : ''}`, res.status, retryableStatus(res.status))
  }
  try {
    const reply: unknown = JSON.parse(text)
    return reply
  } catch {
    throw new UpstreamError(target, `${target} answered with a body that is not JSON`, res.status, false)
  }
}

const isOpenCircuit = (err: unknown) => err instanceof Error && 'code' in err && err.code === 'EOPENBREAKER'

/** A sleep that ends early when `signal` aborts (shutdown). */
function abortableSleep(signal: AbortSignal): (ms: number) => Promise<void> {
  return (ms) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer)
          resolve()
        },
        { once: true }
      )
    })
}

/** The calls to the owning services: token, one breaker per service, retries with exponential backoff. */
export function createServiceClient(deps: ServiceClientDeps): OwnedServiceClient {
  const stopping = new AbortController()
  const sleep = deps.sleep ?? abortableSleep(stopping.signal)
  const breakerOf = (target: Target) =>
    createBreaker((attempt: Attempt) => request(target, deps.urls[target], deps.token(), attempt), {
      name: target,
      timeoutMs: false, // each request has its own AbortSignal timeout
      errorPercentage: deps.breaker.errorPercentage,
      volume: deps.breaker.minVolume,
      windowMs: 60_000,
      resetMs: deps.breaker.resetMs,
      // A 4xx is the caller's mistake (or a route not there yet): it says nothing about the service's health.
      ignore: (err) => err instanceof UpstreamError && !err.retryable,
      log: deps.log
    })
  const breakers: Record<Target, ReturnType<typeof breakerOf>> = {
    sessions: breakerOf('sessions'),
    'task-sessions': breakerOf('task-sessions'),
    chat: breakerOf('chat')
  }

  const fire = async (target: Target, attempt: Attempt) => {
    try {
      return await breakers[target].fire(attempt)
    } catch (err) {
      if (isOpenCircuit(err)) throw new UpstreamError(target, `${target} is failing: its circuit is open`, null, true)
      throw err
    }
  }

  return {
    async call(target, path, { method = 'POST', body, timeoutMs = deps.timeoutMs, retries = deps.retries } = {}) {
      for (let n = 0; ; n++) {
        try {
          return await fire(target, { path, method, body, timeoutMs })
        } catch (err) {
          // While shutting down no new attempt starts: BullMQ retries the job later, elsewhere.
          if (!(err instanceof UpstreamError) || !err.retryable || n >= retries || stopping.signal.aborted) throw err
          const delay = retryDelay(n + 1, deps.retryBaseMs, deps.retryMaxMs)
          deps.log.warn({ target, path, attempt: n + 1, delayMs: delay, reason: err.message }, 'service call failed; retrying')
          await sleep(delay)
        }
      }
    },
    breakerState: (target) => breakerState(breakers[target]),
    stopRetrying: () => stopping.abort(),
    close() {
      for (const b of Object.values(breakers)) b.shutdown()
    }
  }
}

/** `fastify.services`: the client with the worker's own service token, retries cut short by shutdown. */
export const serviceClientPlugin = fp<ServiceClientOptions>(
  async (fastify, { signing, tokenTtlSeconds, ...opts }) => {
    const token = serviceTokens({ key: signing, sub: 'cleanup-worker', roles: ['service'], ttlSeconds: tokenTtlSeconds })
    const client = createServiceClient({ ...opts, token, log: fastify.log })
    fastify.decorate('services', client)
    fastify.addHook('preClose', async () => client.stopRetrying())
    fastify.addHook('onClose', async () => client.close())
  },
  { name: 'service-client', fastify: '5.x' }
)
