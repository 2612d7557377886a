import { Type, type Static } from 'typebox'
import { ReadyReply } from './common.js'
import type { RouteContract } from './routes.js'

export const BreakerState = Type.Union([Type.Literal('closed'), Type.Literal('open'), Type.Literal('half_open')])
export type BreakerState = Static<typeof BreakerState>

/** One upstream instance as the gateway sees it. */
export const UpstreamInstanceHealth = Type.Object({
  url: Type.String(),
  status: Type.Union([Type.Literal('up'), Type.Literal('down')]),
  breaker: BreakerState,
  latencyMs: Type.Union([Type.Number(), Type.Null()])
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

/** GET /health of the gateway: degraded while a breaker is open, a service is down or Redis is down. */
export const GatewayHealthReply = Type.Object(
  {
    status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')]),
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
    method: 'GET', path: '/health', tag: 'gateway', auth: 'none',
    summary: 'Health of the gateway and of every upstream service (breaker, latency), Redis and NATS',
    responses: {
      200: { description: 'healthy or degraded', schema: GatewayHealthReply },
      503: { description: 'unhealthy: no upstream service answers', schema: GatewayHealthReply }
    }
  },
  {
    method: 'GET', path: '/ready', tag: 'gateway', auth: 'none',
    summary: 'Readiness for orchestrators',
    responses: { 200: { description: 'ready or degraded', schema: ReadyReply }, 503: { description: 'not ready', schema: ReadyReply } }
  },
  {
    method: 'GET', path: '/metrics', tag: 'gateway', auth: 'none',
    summary: 'Prometheus metrics (may be restricted to METRICS_ALLOW addresses)',
    responses: { 200: { description: 'text/plain exposition format' } }
  }
]
