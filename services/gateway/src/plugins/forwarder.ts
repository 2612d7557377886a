import { performance } from 'node:perf_hooks'
import { PassThrough, Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import fp from 'fastify-plugin'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { addDegradation, DEGRADATION_MODE_HEADER, DEGRADATION_REASON_HEADER, joinDegradation } from '@platform/contracts'
import { hasBody, type BodyDrain } from '@platform/kit'
import { backoffMs, isRetryableStatus, mayRetry, retryAfterMs } from '../domain/retry.js'
import { isHopByHop, upstreamHeaders } from '../domain/headers.js'
import {
  CircuitOpenError,
  ClientAbortedError,
  PayloadTooLargeError,
  ServicePayloadTooLargeError,
  ServiceRefusedError,
  UpstreamError,
  UpstreamTimeoutError,
  withRetryAfter
} from '../domain/errors.js'
import {
  ATTEMPT_TIMEOUT,
  CLIENT_SIDE_CODES,
  UpstreamRefusedError,
  UpstreamStatusError,
  type UpstreamResponse,
  type UpstreamService
} from './upstreams.js'
import type { GatewayMetrics } from './gateway-metrics.js'

export interface ForwarderOptions {
  maxRetries: number
  retryDelaySeconds: number
  backoffFactor: number
  sizeLimit: number
  /** Monotonic ms for the request's deadline [performance.now]; tests move it. */
  now?: () => number
  /** Waits before a retry [timers/promises setTimeout]; tests record the waits instead. */
  sleep?: (ms: number) => Promise<unknown>
}

/** A route's time budget: per attempt, and for the whole request (every attempt and backoff). */
export interface RouteTiming {
  timeoutMs: number
  deadlineMs: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's address (TRUSTED_PROXIES applied), set first thing on proxied routes. */
    clientIp: string
  }
  interface FastifyInstance {
    forwarder: Forwarder
  }
}

/**
 * The body passes through while it stays under the limit. Past it the client's stream is paused, never
 * destroyed, so the 413 still reaches the client.
 */
function limitedStream(src: Readable, limit: number): Readable {
  const out = new PassThrough()
  let seen = 0
  const stop = (err: Error) => {
    src.off('data', onData)
    src.pause()
    out.destroy(err)
  }
  const onData = (chunk: Buffer) => {
    seen += chunk.length
    if (seen > limit) return stop(new PayloadTooLargeError(String(limit)))
    if (!out.write(chunk)) src.pause()
  }
  out.on('drain', () => src.resume())
  src.on('data', onData)
  src.once('end', () => out.end())
  src.once('aborted', () => stop(new ClientAbortedError()))
  src.once('error', () => stop(new ClientAbortedError()))
  return out
}

/** The whole body in memory, for requests that may be sent again; same limit and same care. */
function readLimited(src: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let seen = 0
    const stop = (err: Error) => {
      src.off('data', onData)
      src.pause()
      reject(err)
    }
    const onData = (chunk: Buffer) => {
      seen += chunk.length
      if (seen > limit) return stop(new PayloadTooLargeError(String(limit)))
      chunks.push(chunk)
    }
    src.on('data', onData)
    src.once('end', () => resolve(Buffer.concat(chunks, seen)))
    src.once('aborted', () => stop(new ClientAbortedError()))
    src.once('error', () => stop(new ClientAbortedError()))
  })
}

/**
 * The upstream's response headers a client gets, as [name, value, …]: not hop-by-hop, not its request id,
 * and not a name the gateway already set on the reply (rate limit, session id), except Set-Cookie. Its
 * X-Degradation-Mode and -Reason join the reply's own (modes and reasons alike, the gateway's first).
 */
function relayedHeaders(reply: FastifyReply, upstream: string[]): string[] {
  const out: string[] = []
  let modes: string | undefined
  let reasons: string | undefined
  for (let i = 0; i < upstream.length; i += 2) {
    const name = upstream[i] as string
    const value = upstream[i + 1] as string
    if (name === DEGRADATION_MODE_HEADER) modes = value
    else if (name === DEGRADATION_REASON_HEADER) reasons = value
    else if (!isHopByHop(name) && name !== 'x-request-id' && (name === 'set-cookie' || !reply.hasHeader(name))) out.push(name, value)
  }
  if (modes !== undefined) joinDegradation(reply, modes, reasons)
  return out
}

/**
 * A buffered upstream answer goes to the client in one writeHead and end on the raw response, past
 * Fastify's send pipeline (proxied routes have no onSend hooks; onResponse still runs), the gateway's own
 * headers first.
 */
function relayBuffered(reply: FastifyReply, statusCode: number, upstream: string[], body: Buffer): FastifyReply {
  const relayed = relayedHeaders(reply, upstream)
  const own = reply.getHeaders()
  const headers: Array<string | string[]> = []
  // Cookies travel as one list: a name given twice to writeHead may collapse to its last value.
  let cookies: string[] | null = null
  for (const name in own) {
    const value = own[name]
    if (value === undefined) continue
    if (name === 'set-cookie') cookies = Array.isArray(value) ? [...value] : [String(value)]
    else headers.push(name, Array.isArray(value) ? value : String(value))
  }
  for (let i = 0; i < relayed.length; i += 2) {
    if (relayed[i] === 'set-cookie') (cookies ??= []).push(relayed[i + 1] as string)
    else headers.push(relayed[i] as string, relayed[i + 1] as string)
  }
  if (cookies) headers.push('set-cookie', cookies)
  reply.hijack()
  reply.raw.writeHead(statusCode, headers)
  reply.raw.end(body)
  return reply
}

function headerOf(res: UpstreamResponse, name: string): string | undefined {
  const h = res.headers
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1]
  return undefined
}

type Failure =
  | { kind: 'open' }
  | { kind: 'client'; error: Error }
  | { kind: 'refused'; statusCode: number }
  | { kind: 'status'; response: UpstreamResponse }
  | { kind: 'timeout' }
  | { kind: 'connect'; error: Error }

/** `status_503`, `timeout`, `connect`: the metric label of a failed attempt. */
const failureKind = (f: Failure) => (f.kind === 'status' ? `status_${f.response.statusCode}` : f.kind)

function classify(err: unknown): Failure {
  if (err instanceof UpstreamStatusError) return { kind: 'status', response: err.response }
  if (err instanceof UpstreamRefusedError) return { kind: 'refused', statusCode: err.statusCode }
  const code = (err as { code?: string }).code ?? ''
  if (code === 'EOPENBREAKER') return { kind: 'open' }
  if (CLIENT_SIDE_CODES.has(code)) return { kind: 'client', error: err as Error }
  if (code === ATTEMPT_TIMEOUT || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { kind: 'timeout' }
  }
  return { kind: 'connect', error: err as Error }
}

/**
 * Sends a request to a service: one instance per attempt (round robin over closed breakers), each
 * attempt through that instance's breaker, retried only when the method is safe or the client sent
 * Idempotency-Key, with backoff or the upstream's Retry-After, all inside the request's deadline.
 *
 * undici directly rather than @fastify/reply-from: the retry loop has to pick an instance and consult
 * its breaker per attempt, replay a buffered body, and decide on a retry before anything reaches the
 * client, while reply-from commits the reply on its first attempt.
 */
export class Forwarder {
  private readonly now: () => number
  private readonly sleep: (ms: number) => Promise<unknown>

  constructor(
    private readonly opts: ForwarderOptions,
    private readonly metrics: GatewayMetrics,
    private readonly drain: BodyDrain
  ) {
    this.now = opts.now ?? (() => performance.now())
    this.sleep = opts.sleep ?? sleep
  }

  async forward(request: FastifyRequest, reply: FastifyReply, service: UpstreamService, timing: RouteTiming): Promise<FastifyReply> {
    const { timeoutMs } = timing
    const deadline = this.now() + timing.deadlineMs
    const retryable = this.opts.maxRetries > 0 && mayRetry(request.method, request.headers['idempotency-key'])
    const headers = upstreamHeaders(request.headers, {
      requestId: request.id,
      clientIp: request.clientIp,
      host: request.headers.host,
      proto: request.protocol
    })
    let body: Buffer | Readable | null = null
    if (hasBody(request)) {
      const src = (request.body as Readable | undefined) ?? request.raw
      body = retryable
        ? await readLimited(src, this.opts.sizeLimit).catch((err: Error) => this.clientFailure(request, reply, err))
        : limitedStream(src, this.opts.sizeLimit)
    } else if (headers['content-length'] !== undefined) {
      delete headers['content-length']
    }
    const options: Dispatcher.DispatchOptions = {
      path: request.url,
      method: request.method as Dispatcher.HttpMethod,
      headers,
      body,
      headersTimeout: timeoutMs + 1000, // a backstop only: the attempt's own timer fires first
      bodyTimeout: timeoutMs
    }

    let retries = 0
    for (;;) {
      const instance = service.pick()
      if (instance === null) return this.circuitOpen(request, reply, service)
      const started = performance.now()
      const attemptMs = Math.max(1, Math.min(timeoutMs, deadline - this.now()))
      let failure: Failure
      try {
        const res = (await instance.breaker.fire(() => instance.send(options, attemptMs))) as UpstreamResponse
        instance.observeLatency((performance.now() - started) / 1000)
        return this.relay(request, reply, res)
      } catch (err) {
        failure = classify(err)
      }
      if (failure.kind === 'open') continue // it opened between pick and fire: pick again
      if (failure.kind === 'client') return this.clientFailure(request, reply, failure.error)
      instance.observeLatency((performance.now() - started) / 1000)
      if (failure.kind === 'refused') return this.refused(request, reply, service, failure.statusCode)
      this.metrics.upstreamFailures.inc({
        service: service.name,
        instance: instance.url,
        kind: failureKind(failure)
      })

      const delay = retryable && retries < this.opts.maxRetries ? this.retryDelay(failure, retries) : null
      if (delay !== null && this.now() + delay < deadline && !request.socket.destroyed) {
        if (failure.kind === 'status' && failure.response.body instanceof Readable) failure.response.body.destroy()
        retries++
        this.metrics.retries.inc({ service: service.name, reason: failureKind(failure) })
        if (delay > 0) await this.sleep(delay)
        continue
      }
      if (failure.kind === 'status') return this.relay(request, reply, failure.response)
      this.unread(request, reply)
      if (failure.kind === 'timeout') throw new UpstreamTimeoutError(service.name)
      request.log.warn({ err: failure.error, service: service.name, instance: instance.url }, 'upstream unreachable')
      throw new UpstreamError(service.name)
    }
  }

  /** Milliseconds before the next attempt, or null when this failure is not worth one. */
  private retryDelay(failure: Failure, retries: number): number | null {
    if (failure.kind === 'status') {
      if (!isRetryableStatus(failure.response.statusCode)) return null
      const after = retryAfterMs(headerOf(failure.response, 'retry-after'))
      if (after !== null) return after
    }
    return backoffMs(retries, this.opts.retryDelaySeconds, this.opts.backoffFactor)
  }

  private relay(request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): FastifyReply {
    const body = res.body
    if (body instanceof Readable) {
      const relayed = relayedHeaders(reply, res.headers)
      for (let i = 0; i < relayed.length; i += 2) reply.header(relayed[i] as string, relayed[i + 1])
      return reply.code(res.statusCode).send(body)
    }
    // A whole answer while the body is still coming: the upstream is done with it.
    this.unread(request, reply)
    return relayBuffered(reply, res.statusCode, res.headers, body)
  }

  private circuitOpen(request: FastifyRequest, reply: FastifyReply, service: UpstreamService): never {
    this.unread(request, reply)
    addDegradation(reply, service.degradationMode)
    this.metrics.degradations.inc({ mode: service.degradationMode })
    throw withRetryAfter(new CircuitOpenError(service.name), service.retryAfterSeconds())
  }

  /**
   * An answer while the client is still sending its body (an open breaker, a failed or early-answering
   * upstream): the rest is drained, bounded, then the connection closes, so the client reads the answer.
   */
  private unread(request: FastifyRequest, reply: FastifyReply): void {
    if (!request.raw.complete && hasBody(request)) this.drain.start(request, reply)
  }

  /**
   * A 4xx whose body the broken connection lost (a 413 while the body was still being sent, then a close):
   * the refusal is the answer, in the gateway's error shape; it is neither a failure nor retried.
   */
  private refused(request: FastifyRequest, reply: FastifyReply, service: UpstreamService, statusCode: number): never {
    this.unread(request, reply)
    if (statusCode === 413) throw new ServicePayloadTooLargeError(service.name)
    throw Object.assign(new ServiceRefusedError(service.name), { statusCode })
  }

  private clientFailure(request: FastifyRequest, reply: FastifyReply, err: Error): never {
    // The rest of an oversized body is read and dropped (bounded) after the 413, then the connection closes.
    if ((err as { code?: string }).code === 'PAYLOAD_TOO_LARGE') this.drain.start(request, reply)
    throw err
  }
}

export const forwarderPlugin = fp<ForwarderOptions>(
  async (fastify, opts) => {
    fastify.decorate('forwarder', new Forwarder(opts, fastify.gatewayMetrics, fastify.bodyDrain))
    fastify.decorateRequest('clientIp', '')
  },
  { name: 'forwarder', dependencies: ['gateway-metrics', 'upstreams', 'platform-body-drain'] }
)
