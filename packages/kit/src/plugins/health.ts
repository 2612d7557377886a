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
  /** Runs every check at once; with `deadlineMs`, a check that has not answered by then counts as down. */
  report(deadlineMs?: number): Promise<ReadyReply>
}

/** /health answers well within the gateway's probe timeout whatever a dependency does. */
export const HEALTH_CHECK_DEADLINE_MS = 500

/**
 * The registry behind `fastify.readiness`: each plugin adds its dependency's check; the report is
 * `unavailable` when a required one is down, `degraded` when an optional one is. Services with a
 * /health of their own (gateway, cleanup worker) decorate it under the same plugin name.
 */
export function createReadiness(): Readiness {
  const checks = new Map<string, ReadinessCheck>()
  return {
    add: (name, check) => void checks.set(name, check),
    async report(deadlineMs) {
      let timer: NodeJS.Timeout | undefined
      const deadline =
        deadlineMs === undefined
          ? null
          : new Promise<DependencyState>((resolve) => {
              timer = setTimeout(() => resolve('down'), deadlineMs)
            })
      const entries = [...checks]
      const states = await Promise.all(
        entries.map(([, c]) => {
          const state = Promise.resolve()
            .then(c.check)
            .catch((): DependencyState => 'down')
          return deadline ? Promise.race([state, deadline]) : state
        })
      )
      clearTimeout(timer)
      const results: Record<string, DependencyState> = {}
      let status: ReadyReply['status'] = 'ready'
      entries.forEach(([name, c], i) => {
        const state = states[i]!
        results[name] = state
        if (state === 'down') status = c.required ? 'unavailable' : status === 'ready' ? 'degraded' : status
      })
      return { status, checks: results }
    }
  }
}

/**
 * GET /health: liveness, so always 200 (an orchestrator must never restart a pod for an outage),
 * reporting `degraded` and each dependency's state. GET /ready: 503 while a required one is down.
 */
export const healthPlugin = fp(
  async (fastify) => {
    const readiness = createReadiness()
    const report = readiness.report
    fastify.decorate('readiness', readiness)

    fastify.get('/health', { schema: { response: { 200: HealthReply } } }, async (): Promise<HealthReply> => {
      const { checks } = await report(HEALTH_CHECK_DEADLINE_MS)
      return {
        status: Object.values(checks).includes('down') ? 'degraded' : 'healthy',
        uptime: process.uptime(),
        timestamp: new Date().toISOString(),
        checks
      }
    })
    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  { name: 'platform-health', fastify: '5.x' }
)
