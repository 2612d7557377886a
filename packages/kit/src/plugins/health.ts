import fp from 'fastify-plugin'
import { HealthReply, ReadyReply, type DependencyState } from '@platform/contracts'

export interface ReadinessCheck {
  /** Required dependencies make /ready answer 503 when down; optional ones make it "degraded". */
  required: boolean
  check: () => Promise<DependencyState> | DependencyState
}

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

export interface Readiness {
  add(name: string, check: ReadinessCheck): void
  report(): Promise<ReadyReply>
}

/**
 * The registry behind `fastify.readiness`: each plugin adds its dependency's check; the report is
 * `unavailable` when a required one is down, `degraded` when an optional one is. Services with a
 * /health of their own (gateway, cleanup worker) decorate it under the same plugin name.
 */
export function createReadiness(): Readiness {
  const checks = new Map<string, ReadinessCheck>()
  return {
    add: (name, check) => void checks.set(name, check),
    async report() {
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
  }
}

/** GET /health (liveness: the process answers) and GET /ready (each dependency's state). */
export const healthPlugin = fp(
  async (fastify) => {
    const readiness = createReadiness()
    const report = readiness.report
    fastify.decorate('readiness', readiness)

    fastify.get('/health', { schema: { response: { 200: HealthReply } } }, async () => ({
      status: 'ok' as const,
      uptime: process.uptime(),
      timestamp: new Date().toISOString()
    }))
    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  { name: 'platform-health', fastify: '5.x' }
)
