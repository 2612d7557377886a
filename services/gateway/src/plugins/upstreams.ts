import fp from 'fastify-plugin'
import type { UpstreamOptions } from '../upstreams/instance.js'
import { Upstreams } from '../upstreams/service.js'

export type { UpstreamOptions } from '../upstreams/instance.js'

declare module 'fastify' {
  interface FastifyInstance {
    upstreams: Upstreams
  }
}

/** Every upstream instance of the upstream table with its pool and breaker; closed with the app. */
export const upstreamsPlugin = fp<UpstreamOptions>(
  async (fastify, opts) => {
    const upstreams = new Upstreams(opts, fastify.gatewayMetrics, fastify.log)
    fastify.decorate('upstreams', upstreams)
    fastify.addHook('onClose', async () => upstreams.close())
  },
  { name: 'upstreams', dependencies: ['gateway-metrics'] }
)
