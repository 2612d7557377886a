import fp from 'fastify-plugin'
import { GatewayHealthReply, ReadyReply } from '@platform/contracts'
import { createReadiness } from '@platform/kit'

export interface GatewayHealthOptions {
  probeTimeoutMs: number
}

type Up = 'up' | 'down'

/**
 * Unhealthy while a whole service is down (none of its instances answers: its routes can only fail);
 * degraded while one instance is down, a breaker is not closed, or Redis or NATS is down.
 */
export function assess(services: GatewayHealthReply['services'], redis: Up, nats: Up): Pick<GatewayHealthReply, 'status' | 'reasons'> {
  const down: string[] = []
  const degraded: string[] = []
  for (const [name, service] of Object.entries(services)) {
    if (service.status === 'down') {
      down.push(`${name}: every instance is down`)
      continue
    }
    for (const i of service.instances) {
      if (i.status === 'down') degraded.push(`${name}: ${i.url} is down (${i.lastProbe.result})`)
      else if (i.breaker !== 'closed') degraded.push(`${name}: ${i.url} has its breaker ${i.breaker.replace('_', '-')}`)
    }
  }
  if (redis === 'down') degraded.push('redis is down: rate limits are counted per instance')
  if (nats === 'down') degraded.push('nats is down')
  const status = down.length ? 'unhealthy' : degraded.length ? 'degraded' : 'healthy'
  return { status, reasons: [...down, ...degraded] }
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
      // A Redis that answers nothing (frozen) is not 'ready' either.
      const redis = fastify.redis.status === 'ready' ? 'up' : 'down'
      const nats = fastify.nats.connected ? 'up' : 'down'
      const { status, reasons } = assess(services, redis, nats)
      return reply.code(status === 'unhealthy' ? 503 : 200).send({
        status,
        reasons,
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
