import fp from 'fastify-plugin'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { BoundHistogram } from '../bound-histogram.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's Prometheus registry: services add their own metrics to it. */
    metrics: Registry
  }
}

/** Request duration by route and status, process metrics, and GET /metrics. */
export const metricsPlugin = fp(
  async (fastify) => {
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

    fastify.get('/metrics', async (_request, reply) => {
      reply.type(registry.contentType)
      return registry.metrics()
    })
  },
  { name: 'platform-metrics', fastify: '5.x' }
)
