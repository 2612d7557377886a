import fp from 'fastify-plugin'
import { ReadyReply } from '@platform/contracts'
import { createReadiness } from '@platform/kit'

/**
 * The `readiness` decorator and GET /ready, standing in for the kit's health plugin (same name, which the
 * db and NATS plugins depend on) because the worker's /health (routes/health.ts) reports the spec's
 * health criteria (overdue schedules, active sessions over the alert threshold) instead of bare liveness.
 */
export const readinessPlugin = fp(
  async (fastify) => {
    const readiness = createReadiness()
    const report = readiness.report
    fastify.decorate('readiness', readiness)

    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  // Named like the kit's plugin on purpose: platform-db and platform-nats depend on that name.
  { name: 'platform-health', fastify: '5.x' }
)
