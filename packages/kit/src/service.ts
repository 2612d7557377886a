import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { platformPlugins, type PlatformOptions } from './platform.js'
import type { ServiceConfig } from './server.js'

/** What tells one service from another; `defineService` puts the parts together the same way for all. */
export interface ServiceParts<O extends { config: ServiceConfig }> {
  /** Rules across variables that the config schema cannot express; throws ConfigError naming them. */
  check?: (config: O['config']) => void
  /** Which of the kit's plugins the service loads, and how. */
  platform: (opts: O) => Omit<PlatformOptions, 'config'>
  /** The service's own plugins: stores, clients, domain services. */
  plugins: (fastify: FastifyInstance, opts: O) => Promise<void>
  /** Its routes, registered last. */
  routes: (fastify: FastifyInstance, opts: O) => Promise<void>
}

/**
 * A service as one Fastify plugin, assembled in one order everywhere: config check, the kit's plugins
 * (platformPlugins), the service's plugins, its routes. server.ts runs it (runService); tests build it
 * (buildService in @platform/kit/testing).
 */
export function defineService<O extends { config: ServiceConfig }>(parts: ServiceParts<O>): FastifyPluginAsync<O> {
  return async (fastify, opts) => {
    parts.check?.(opts.config)
    await fastify.register(platformPlugins, { config: opts.config, ...parts.platform(opts) })
    await parts.plugins(fastify, opts)
    await parts.routes(fastify, opts)
  }
}
