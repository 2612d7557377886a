import fp from 'fastify-plugin'
import type { FastifyRequest } from 'fastify'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { BoundHistogram } from '../bound-histogram.js'
import { ForbiddenError } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's Prometheus registry: services add their own metrics to it. */
    metrics: Registry
  }
}

export interface MetricsOptions {
  /** Who may read /metrics: every other caller gets 403 FORBIDDEN. Unset: everyone. */
  allow?: (request: FastifyRequest) => boolean
}

/** Request duration by route and status, process metrics, and GET /metrics. */
export const metricsPlugin = fp<MetricsOptions>(
  async (fastify, opts) => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const duration = new BoundHistogram(
      'http_request_duration_seconds',
      'HTTP request duration by method, route and status code',
      ['method', 'route', 'status_code'] as const,
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      [registry]
    )
    // Observers by method, route and status: bounded by the routes a service declares.
    const observers = new Map<string, (seconds: number) => void>()
    fastify.decorate('metrics', registry)

    fastify.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched'
      if (route !== '/metrics') {
        const key = `${request.method} ${reply.statusCode} ${route}`
        let observe = observers.get(key)
        if (observe === undefined) {
          observe = duration.bind(request.method, route, String(reply.statusCode))
          observers.set(key, observe)
        }
        observe(reply.elapsedTime / 1000)
      }
      done()
    })

    const allow = opts.allow
    const guard = allow
      ? async (request: FastifyRequest) => {
          if (!allow(request)) throw new ForbiddenError('Metrics are not available from this address')
        }
      : undefined
    fastify.get('/metrics', { ...(guard ? { onRequest: guard } : {}) }, async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  },
  { name: 'platform-metrics', fastify: '5.x' }
)
