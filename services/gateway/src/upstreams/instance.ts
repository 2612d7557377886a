import { Pool, type Dispatcher } from 'undici'
import type { BreakerState, UpstreamInstanceHealth, UpstreamProbe } from '@platform/contracts'
import type { ServiceName } from '../domain/route-table.js'
import { BREAKER_GAUGE, type GatewayMetrics } from '../plugins/gateway-metrics.js'
import { sendAttempt, type UpstreamResponse } from './attempt.js'
import { Breaker, type BreakerOptions } from './breaker.js'
import { codeOf } from '../domain/error-code.js'

/** The pool per instance, and the breaker each instance gets (its state reported to the gateway's metrics). */
export interface UpstreamOptions extends Omit<BreakerOptions, 'onState'> {
  urls: Record<ServiceName, string>
  connections: number
  connectTimeoutMs: number
}

export interface Log {
  warn(obj: object, msg: string): void
  info(obj: object, msg: string): void
}

/** undici's codes for a probe that got no answer in time. */
const PROBE_TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/** The breaker's moves, as the state gauge, the transition counter and a log line. */
function reportState(service: ServiceName, url: string, metrics: GatewayMetrics, log: Log) {
  const labels = { service, instance: url }
  metrics.breakerState.set(labels, BREAKER_GAUGE.closed)
  return (state: BreakerState) => {
    metrics.breakerState.set(labels, BREAKER_GAUGE[state])
    metrics.breakerTransitions.inc({ ...labels, to: state })
    if (state === 'open') log.warn(labels, 'circuit breaker opened')
    else if (state === 'half_open') log.info(labels, 'circuit breaker half-open: letting one probe through')
    else log.info(labels, 'circuit breaker closed')
  }
}

/** One upstream instance: a keep-alive undici pool and its own breaker. */
export class UpstreamInstance {
  readonly pool: Pool
  readonly breaker: Breaker
  /** Observes one attempt's time to headers, in seconds (bound once per instance). */
  readonly observeLatency: (seconds: number) => void

  constructor(
    readonly service: ServiceName,
    readonly url: string,
    opts: UpstreamOptions,
    metrics: GatewayMetrics,
    log: Log
  ) {
    this.pool = new Pool(url, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      connect: { timeout: opts.connectTimeoutMs }
    })
    this.observeLatency = metrics.upstreamLatency.bind(service, url)
    this.breaker = new Breaker({
      failureThreshold: opts.failureThreshold,
      errorPercentage: opts.errorPercentage,
      minVolume: opts.minVolume,
      windowMs: opts.windowMs,
      recoveryMs: opts.recoveryMs,
      ...(opts.now ? { now: opts.now } : {}),
      onState: reportState(service, url, metrics, log)
    })
  }

  /** Closed, or half-open with its one probe not yet taken. */
  get available(): boolean {
    return this.breaker.available
  }

  /** One attempt (the caller has acquired the breaker and settles it): see sendAttempt. */
  send(opts: Dispatcher.DispatchOptions, timeoutMs: number): Promise<UpstreamResponse> {
    return sendAttempt(this.pool, opts, timeoutMs)
  }

  /** Asks the instance's own /health: up on a 200 within `timeoutMs`; what happened is kept as its last probe. */
  async probe(timeoutMs: number): Promise<UpstreamInstanceHealth> {
    const at = new Date().toISOString()
    const start = performance.now()
    let lastProbe: UpstreamProbe
    try {
      const res = await this.pool.request({ path: '/health', method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
      await res.body.dump()
      const latencyMs = Math.round((performance.now() - start) * 100) / 100
      lastProbe = { at, latencyMs, result: res.statusCode === 200 ? 'ok' : 'bad_status', statusCode: res.statusCode }
    } catch (err) {
      const timedOut = PROBE_TIMEOUTS.has(codeOf(err))
      lastProbe = { at, latencyMs: null, result: timedOut ? 'timeout' : 'unreachable', statusCode: null }
    }
    return { url: this.url, status: lastProbe.result === 'ok' ? 'up' : 'down', breaker: this.breaker.state, lastProbe }
  }

  async close(): Promise<void> {
    this.breaker.close()
    await this.pool.destroy()
  }
}
