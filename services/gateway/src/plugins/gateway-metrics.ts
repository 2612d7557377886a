import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { BoundHistogram } from '@platform/kit'

/** Breaker states as gauge values. */
export const BREAKER_GAUGE = { closed: 0, half_open: 1, open: 2 } as const

export interface GatewayMetrics {
  upstreamLatency: BoundHistogram<'service' | 'instance'>
  upstreamFailures: Counter<'service' | 'instance' | 'kind'>
  breakerState: Gauge<'service' | 'instance'>
  breakerTransitions: Counter<'service' | 'instance' | 'to'>
  retries: Counter<'service' | 'reason'>
  rateLimitRejections: Counter<'identity' | 'store'>
  degradations: Counter<'mode'>
}

declare module 'fastify' {
  interface FastifyInstance {
    gatewayMetrics: GatewayMetrics
  }
}

/**
 * The gateway's own metrics beside the kit's request histogram (requests by route and status):
 * upstream latency, breaker state per instance, retries, rate-limit rejections, degradations (drained bodies:
 * the kit's body drain).
 */
export const gatewayMetricsPlugin = fp(
  async (fastify) => {
    const registers = [fastify.metrics]
    fastify.decorate('gatewayMetrics', {
      upstreamLatency: new BoundHistogram(
        'gateway_upstream_duration_seconds',
        'Time to the upstream response headers, per attempt',
        ['service', 'instance'] as const,
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
        registers
      ),
      upstreamFailures: new Counter({
        name: 'gateway_upstream_failures_total',
        help: 'Failed upstream attempts by kind (connect, timeout, status_5xx)',
        labelNames: ['service', 'instance', 'kind'] as const,
        registers
      }),
      breakerState: new Gauge({
        name: 'gateway_circuit_breaker_state',
        help: 'Breaker state per upstream instance: 0 closed, 1 half-open, 2 open',
        labelNames: ['service', 'instance'] as const,
        registers
      }),
      breakerTransitions: new Counter({
        name: 'gateway_circuit_breaker_transitions_total',
        help: 'Breaker state changes per upstream instance',
        labelNames: ['service', 'instance', 'to'] as const,
        registers
      }),
      retries: new Counter({
        name: 'gateway_retries_total',
        help: 'Upstream attempts repeated, by the reason of the failed attempt',
        labelNames: ['service', 'reason'] as const,
        registers
      }),
      rateLimitRejections: new Counter({
        name: 'gateway_rate_limit_rejections_total',
        help: 'Requests refused with 429, by identity kind and by the limiter that counted them',
        labelNames: ['identity', 'store'] as const,
        registers
      }),
      degradations: new Counter({
        name: 'gateway_degradations_total',
        help: 'Replies served in a degraded mode (X-Degradation-Mode)',
        labelNames: ['mode'] as const,
        registers
      })
    })
  },
  { name: 'gateway-metrics', dependencies: ['platform-metrics'] }
)
