import fp from 'fastify-plugin'
import { ReadyReply, type DependencyState } from '@platform/contracts'
import type { ReadinessCheck } from '@platform/kit'

/**
 * The `readiness` decorator and GET /ready, standing in for the kit's health plugin (same name, which the
 * db and NATS plugins depend on) because the worker's /health (routes/health.ts) reports the spec's
 * health criteria (overdue schedules, active sessions over the alert threshold) instead of bare liveness.
 */
export const readinessPlugin = fp(
  async (fastify) => {
    const checks = new Map<string, ReadinessCheck>()
    const report = async (): Promise<ReadyReply> => {
      const results: Record<string, DependencyState> = {}
      let status: ReadyReply['status'] = 'ready'
      for (const [name, c] of checks) {
        const state = await Promise.resolve()
          .then(c.check)
          .catch((): DependencyState => 'down')
        results[name] = state
        if (state === 'down') status = c.required ? 'unavailable' : status === 'ready' ? 'degraded' : status
      }
      return { status, checks: results }
    }
    fastify.decorate('readiness', { add: (name: string, c: ReadinessCheck) => void checks.set(name, c), report })

    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  // Named like the kit's plugin on purpose: platform-db and platform-nats depend on that name.
  { name: 'platform-health', fastify: '5.x' }
)
