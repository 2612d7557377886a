import fp from 'fastify-plugin'
import { GatewayHealthReply, ReadyReply } from '@platform/contracts'
import { createReadiness } from '@platform/kit'

export interface GatewayHealthOptions {
  probeTimeoutMs: number
}

/**
 * The gateway's /health and /ready. It stands in for the kit's health plugin (same name and the same
 * `readiness` decorator, which the Redis and NATS plugins register with) because the gateway's /health
 * also reports every upstream service: its breaker, whether it answers, and how fast.
 */
export const gatewayHealthPlugin = fp<GatewayHealthOptions>(
  async (fastify, opts) => {
    const readiness = createReadiness()
    const report = readiness.report
    fastify.decorate('readiness', readiness)

    // One probe round at a time: concurrent /health calls share it.
    let probing: Promise<GatewayHealthReply['services']> | null = null
    const probe = () =>
      (probing ??= fastify.upstreams.health(opts.probeTimeoutMs).finally(() => {
        probing = null
      }))

    fastify.get('/health', { schema: { response: { 200: GatewayHealthReply, 503: GatewayHealthReply } } }, async (_request, reply) => {
      const services = await probe()
      const redis = fastify.redis.status === 'ready' ? 'up' : 'down'
      const nats = fastify.nats.connected ? 'up' : 'down'
      const list = Object.values(services)
      const status = list.every((s) => s.status === 'down')
        ? 'unhealthy'
        : redis === 'down' || list.some((s) => s.status === 'down' || s.breaker !== 'closed')
          ? 'degraded'
          : 'healthy'
      return reply.code(status === 'unhealthy' ? 503 : 200).send({
        status,
        timestamp: new Date().toISOString(),
        uptime: process.uptime(),
        redis,
        nats,
        services
      })
    })

    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  // Named like the kit's plugin on purpose: platform-redis and platform-nats depend on that name.
  { name: 'platform-health', fastify: '5.x' }
)
