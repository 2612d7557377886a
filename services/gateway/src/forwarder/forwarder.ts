import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { addDegradation } from '@platform/contracts'
import { hasBody, withRetryAfter, type BodyDrain } from '@platform/kit'
import { backoffMs, isRetryableStatus, mayRetry, retryAfterMs } from '../domain/retry.js'
import { upstreamHeaders } from '../domain/headers.js'
import { CircuitOpenError, ServicePayloadTooLargeError, ServiceRefusedError, UpstreamError, UpstreamTimeoutError } from '../domain/errors.js'
import { ATTEMPT_TIMEOUT, UpstreamRefusedError, type UpstreamResponse } from '../upstreams/attempt.js'
import type { UpstreamInstance } from '../upstreams/instance.js'
import type { UpstreamService } from '../upstreams/service.js'
import type { GatewayMetrics } from '../plugins/gateway-metrics.js'
import { limitedStream, readLimited } from './body.js'
import { headerOf, relayBuffered, relayStreamed } from './relay.js'
import { codeOf } from '../domain/error-code.js'

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

/** How one attempt ended: an answer below 500, or else why not. */
type Outcome =
  | { kind: 'answer'; response: UpstreamResponse }
  | { kind: 'status'; response: UpstreamResponse }
  | { kind: 'client'; error: Error }
  | { kind: 'refused'; statusCode: number }
  | { kind: 'timeout' }
  | { kind: 'connect'; error: Error }
type Failure = Exclude<Outcome, { kind: 'answer' | 'client' | 'refused' }>

/** Errors that say nothing about the upstream's health: the client's body was too large or the client went away. */
const CLIENT_SIDE_CODES = new Set(['PAYLOAD_TOO_LARGE', 'CLIENT_ABORTED'])
const TIMEOUT_CODES = new Set([ATTEMPT_TIMEOUT, 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])

function classify(err: unknown): Outcome {
  if (err instanceof UpstreamRefusedError) return { kind: 'refused', statusCode: err.statusCode }
  const error = err instanceof Error ? err : new Error(String(err))
  const code = codeOf(err)
  if (CLIENT_SIDE_CODES.has(code)) return { kind: 'client', error }
  if (TIMEOUT_CODES.has(code)) return { kind: 'timeout' }
  return { kind: 'connect', error }
}

/** `status_503`, `timeout`, `connect`: the metric label of a failed attempt. */
const failureKind = (f: Failure) => (f.kind === 'status' ? `status_${f.response.statusCode}` : f.kind)

/**
 * Sends a request to a service: one instance per attempt (round robin over closed breakers), each
 * attempt counted by that instance's breaker, retried only when the method is safe or the client sent
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
    const deadline = this.now() + timing.deadlineMs
    const retryable = this.opts.maxRetries > 0 && mayRetry(request.method, request.headers['idempotency-key'])
    // A body that may be sent again is read whole first; any other streams through once.
    const body = !hasBody(request)
      ? null
      : retryable
        ? await readLimited(this.bodyOf(request), this.opts.sizeLimit).catch((err: Error) => this.clientFailure(request, reply, err))
        : limitedStream(this.bodyOf(request), this.opts.sizeLimit)
    const options = this.dispatchOptions(request, body, timing.timeoutMs)
    for (let retries = 0; ; retries++) {
      const instance = service.pick()
      if (instance === null || !instance.breaker.acquire()) return this.circuitOpen(request, reply, service)
      const started = performance.now()
      let outcome: Outcome
      try {
        outcome = this.answered(instance, started, await instance.send(options, Math.max(1, Math.min(timing.timeoutMs, deadline - this.now()))))
      } catch (err) {
        outcome = this.unanswered(instance, started, err)
      }
      if (outcome.kind === 'answer') return this.relay(request, reply, outcome.response)
      if (outcome.kind === 'client') return this.clientFailure(request, reply, outcome.error)
      if (outcome.kind === 'refused') return this.refused(request, reply, service, outcome.statusCode)
      this.metrics.upstreamFailures.inc({ service: service.name, instance: instance.url, kind: failureKind(outcome) })
      const delay = retryable && retries < this.opts.maxRetries ? this.retryDelay(outcome, retries) : null
      if (delay === null || this.now() + delay >= deadline || request.socket.destroyed) {
        return this.failed(request, reply, service, instance, outcome)
      }
      if (outcome.kind === 'status' && outcome.response.body instanceof Readable) outcome.response.body.destroy()
      this.metrics.retries.inc({ service: service.name, reason: failureKind(outcome) })
      if (delay > 0) await this.sleep(delay)
    }
  }

  /** What undici sends: the cleaned headers and the body. */
  private dispatchOptions(request: FastifyRequest, body: Buffer | Readable | null, timeoutMs: number): Dispatcher.DispatchOptions {
    const fwd = { requestId: request.id, clientIp: request.clientIp, host: request.headers.host, proto: request.protocol }
    const headers = upstreamHeaders(request.headers, fwd, body !== null)
    // headersTimeout is a backstop only: the attempt's own timer fires first.
    return { path: request.url, method: request.method, headers, body, headersTimeout: timeoutMs + 1000, bodyTimeout: timeoutMs }
  }

  private bodyOf(request: FastifyRequest): Readable {
    return request.body instanceof Readable ? request.body : request.raw
  }

  /** An answer: below 500 it is the one, a 5xx is a failure (relayed if nothing better comes). */
  private answered(instance: UpstreamInstance, started: number, response: UpstreamResponse): Outcome {
    instance.observeLatency((performance.now() - started) / 1000)
    if (response.statusCode < 500) {
      instance.breaker.success()
      return { kind: 'answer', response }
    }
    instance.breaker.failure()
    return { kind: 'status', response }
  }

  /** No answer: why, and what the breaker makes of it (a client that left or sent too much says nothing of the upstream). */
  private unanswered(instance: UpstreamInstance, started: number, err: unknown): Outcome {
    const outcome = classify(err)
    if (outcome.kind !== 'client') instance.observeLatency((performance.now() - started) / 1000)
    if (outcome.kind === 'client' || outcome.kind === 'refused') instance.breaker.success()
    else instance.breaker.failure()
    return outcome
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

  /** No more attempts: a 5xx is relayed as it is; no answer at all is the gateway's 504 or 502. */
  private failed(request: FastifyRequest, reply: FastifyReply, service: UpstreamService, instance: UpstreamInstance, failure: Failure): FastifyReply {
    if (failure.kind === 'status') return this.relay(request, reply, failure.response)
    this.unread(request, reply)
    if (failure.kind === 'timeout') throw new UpstreamTimeoutError(service.name)
    request.log.warn({ err: failure.error, service: service.name, instance: instance.url }, 'upstream unreachable')
    throw new UpstreamError(service.name)
  }

  private relay(request: FastifyRequest, reply: FastifyReply, res: UpstreamResponse): FastifyReply {
    const body = res.body
    if (body instanceof Readable) return relayStreamed(reply, res.statusCode, res.headers, body)
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
    if (codeOf(err) === 'PAYLOAD_TOO_LARGE') this.drain.start(request, reply)
    throw err
  }
}
