import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { ProxyRoutes, WebSocketRoutes } from '../domain/route-table.js'

/** GET /: a small index of what this gateway serves (the web console replaces it later). */
export const indexRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const index = {
    name: 'session platform gateway',
    docs: '/docs',
    openapi: '/docs/json',
    health: '/health',
    ready: '/ready',
    metrics: '/metrics',
    api: ProxyRoutes.map((r) => ({ prefix: r.prefix, service: r.service, access: r.access })),
    websockets: Object.entries(WebSocketRoutes).map(([path, service]) => ({ path, service }))
  }
  fastify.get(
    '/',
    {
      schema: {
        response: {
          200: Type.Object({
            name: Type.String(),
            docs: Type.String(),
            openapi: Type.String(),
            health: Type.String(),
            ready: Type.String(),
            metrics: Type.String(),
            api: Type.Array(Type.Object({ prefix: Type.String(), service: Type.String(), access: Type.String() })),
            websockets: Type.Array(Type.Object({ path: Type.String(), service: Type.String() }))
          })
        }
      }
    },
    async () => index
  )
}
