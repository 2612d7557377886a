import fp from 'fastify-plugin'
import { Forwarder, type ForwarderOptions } from '../forwarder/forwarder.js'

export type { ForwarderOptions, RouteTiming } from '../forwarder/forwarder.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The client's address (TRUSTED_PROXIES applied), set first thing on proxied routes. */
    clientIp: string
  }
  interface FastifyInstance {
    forwarder: Forwarder
  }
}

/** The forwarder every proxied route hands its request to (see forwarder/forwarder.ts). */
export const forwarderPlugin = fp<ForwarderOptions>(
  async (fastify, opts) => {
    fastify.decorate('forwarder', new Forwarder(opts, fastify.gatewayMetrics, fastify.bodyDrain))
    fastify.decorateRequest('clientIp', '')
  },
  { name: 'forwarder', dependencies: ['gateway-metrics', 'upstreams', 'platform-body-drain'] }
)
