import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { TSchema } from 'typebox'
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
 * `unavailable` when a required one is down, `degraded` when an optional one is.
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

/** A /health of a service's own (the gateway's upstreams, the cleanup worker's schedules) in place of the default. */
export interface HealthReport {
  /** The reply schema of each status it answers with. */
  response: Record<number, TSchema>
  /** Called per request with the app, so it may read decorators registered after the kit's plugins. */
  report(app: FastifyInstance): Promise<{ statusCode: number; body: unknown }>
}

export interface HealthOptions {
  custom?: HealthReport | undefined
}

/** The default /health: each dependency's state; `degraded` while one is down. */
function defaultHealth(readiness: Readiness): HealthReport {
  return {
    response: { 200: HealthReply },
    async report() {
      const { checks } = await readiness.report(HEALTH_CHECK_DEADLINE_MS)
      const body: HealthReply = {
        status: Object.values(checks).includes('down') ? 'degraded' : 'healthy',
        uptime: process.uptime(),
        timestamp: new Date().toISOString(),
        checks
      }
      return { statusCode: 200, body }
    }
  }
}

/**
 * GET /health: liveness, so 200 unless the service can only fail (an orchestrator must never restart a pod
 * for a dependency's outage), reporting `degraded` and why. GET /ready: 503 while a required dependency is down.
 */
export const healthPlugin = fp<HealthOptions>(
  async (fastify, opts) => {
    const readiness = createReadiness()
    const report = (deadlineMs?: number) => readiness.report(deadlineMs)
    fastify.decorate('readiness', readiness)

    const health = opts.custom ?? defaultHealth(readiness)
    fastify.get('/health', { schema: { response: health.response } }, async (request, reply) => {
      const { statusCode, body } = await health.report(request.server)
      return reply.code(statusCode).send(body)
    })
    fastify.get('/ready', { schema: { response: { 200: ReadyReply, 503: ReadyReply } } }, async (_request, reply) => {
      const result = await report()
      return reply.code(result.status === 'unavailable' ? 503 : 200).send(result)
    })
  },
  { name: 'platform-health', fastify: '5.x' }
)
