import { Type, type Static } from 'typebox'
import { ReadyReply } from './common.js'
import { errorResponse } from './errors.js'
import type { RouteContract } from './routes.js'

export const BreakerState = Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half_open')])
export type BreakerState = Static<typeof BreakerState>

/** How an instance answered its last `/health` probe: 200, another status, nothing in time, or no connection. */
export const ProbeResult = Type.Union([Type.Literal('ok'), Type.Literal('bad_status'), Type.Literal('timeout'), Type.Literal('unreachable')])
export type ProbeResult = Static<typeof ProbeResult>

/** The last probe of one instance. */
export const UpstreamProbe = Type.Object({
  at: Type.String({ format: 'date-time', description: 'When it was sent' }),
  latencyMs: Type.Union([Type.Number(), Type.Null()], { description: 'Time to the answer; null without one' }),
  result: ProbeResult,
  statusCode: Type.Union([Type.Integer(), Type.Null()], { description: 'The status it answered, if any' })
})
export type UpstreamProbe = Static<typeof UpstreamProbe>

/** One upstream instance as the gateway sees it: up when its last probe was answered 200. */
export const UpstreamInstanceHealth = Type.Object({
  url: Type.String(),
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  breaker: BreakerState,
  lastProbe: UpstreamProbe
})
export type UpstreamInstanceHealth = Static<typeof UpstreamInstanceHealth>

/** A service: up while any instance answers; the worst breaker; the fastest answering instance's latency. */
export const UpstreamServiceHealth = Type.Object({
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  breaker: BreakerState,
  latencyMs: Type.Union([Type.Number(), Type.Null()]),
  instances: Type.Array(UpstreamInstanceHealth)
})
export type UpstreamServiceHealth = Static<typeof UpstreamServiceHealth>

/**
 * GET /health of the gateway: `unhealthy` (503) while a whole service is down (every instance);
 * `degraded` (200) while an instance is down, a breaker is not closed, or Redis or NATS is down.
 */
export const GatewayHealthReply = Type.Object(
  {
    status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')]),
    reasons: Type.Array(Type.String(), { description: 'Why it is not healthy, one line each; empty when healthy' }),
    timestamp: Type.String({ format: 'date-time' }),
    uptime: Type.Number({ description: 'Seconds since the gateway started' }),
    redis: Type.Union([Type.Literal('up'), Type.Literal('down')]),
    nats: Type.Union([Type.Literal('up'), Type.Literal('down')]),
    services: Type.Record(Type.String(), UpstreamServiceHealth)
  },
  { $id: 'GatewayHealthReply' }
)
export type GatewayHealthReply = Static<typeof GatewayHealthReply>

/** The gateway's own public routes. */
export const GatewayRoutes: RouteContract[] = [
  {
    method: 'GET',
    path: '/health',
    tag: 'gateway',
    auth: 'none',
    summary: 'Health of the gateway and of every upstream instance (breaker, last probe), Redis and NATS',
    responses: {
      200: { description: 'healthy, or degraded: an instance, a breaker, Redis or NATS is not well', schema: GatewayHealthReply },
      503: { description: 'unhealthy: every instance of a service is down', schema: GatewayHealthReply }
    }
  },
  {
    method: 'GET',
    path: '/ready',
    tag: 'gateway',
    auth: 'none',
    summary: 'Readiness for orchestrators',
    responses: { 200: { description: 'ready or degraded', schema: ReadyReply }, 503: { description: 'not ready', schema: ReadyReply } }
  },
  {
    method: 'GET',
    path: '/metrics',
    tag: 'gateway',
    auth: 'none',
    summary: 'Prometheus metrics (may be restricted to METRICS_ALLOW addresses)',
    responses: {
      200: { description: 'text/plain exposition format' },
      403: errorResponse(['FORBIDDEN'], 'not asked from a METRICS_ALLOW address')
    }
  }
]
