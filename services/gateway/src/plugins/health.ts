import type { FastifyInstance } from 'fastify'
import { GatewayHealthReply } from '@platform/contracts'
import type { HealthReport } from '@platform/kit'

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
 * The gateway's /health (the kit serves it, and /ready): besides Redis and NATS it reports every upstream
 * service: its breaker, whether it answers, and how fast. 503 while a whole service is down.
 */
export function gatewayHealth(opts: GatewayHealthOptions): HealthReport {
  // One probe round at a time: concurrent /health calls share it.
  let probing: Promise<GatewayHealthReply['services']> | null = null
  const probe = (app: FastifyInstance) =>
    (probing ??= app.upstreams.health(opts.probeTimeoutMs).finally(() => {
      probing = null
    }))

  return {
    response: { 200: GatewayHealthReply, 503: GatewayHealthReply },
    async report(app) {
      const services = await probe(app)
      // A Redis that answers nothing (frozen) is not 'ready' either.
      const redis = app.redis.status === 'ready' ? 'up' : 'down'
      const nats = app.nats.connected ? 'up' : 'down'
      const { status, reasons } = assess(services, redis, nats)
      const body: GatewayHealthReply = { status, reasons, timestamp: new Date().toISOString(), uptime: process.uptime(), redis, nats, services }
      return { statusCode: status === 'unhealthy' ? 503 : 200, body }
    }
  }
}
