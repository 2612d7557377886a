import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { CleanupHealthReply } from '@platform/contracts'

/** GET /health: liveness (always 200 while the process answers) with the spec's health criteria. */
export const healthRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', { schema: { response: { 200: CleanupHealthReply } } }, async () => fastify.cleanupHealth.report())
}
