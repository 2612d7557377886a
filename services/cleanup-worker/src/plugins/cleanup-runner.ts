import fp from 'fastify-plugin'
import { UnrecoverableError, type Job } from 'bullmq'
import { Value } from 'typebox/value'
import { CleanupJobData } from '@platform/contracts'
import { planFor, summarize, UnexpectedReplyError, type RunResult } from '../domain/kinds.js'
import { UpstreamError } from './service-client.js'
import type { StartedRun } from './run-history.js'

export interface CleanupRunnerOptions {
  batchSize: number
  namedMaxAgeSeconds: number | undefined
  historyRetentionDays: number
}

export interface CleanupRunner {
  /** The BullMQ processor: one attempt of one run. Throws to let BullMQ retry (or fail) the job. */
  process(job: Job): Promise<RunResult>
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupRunner: CleanupRunner
  }
}

/** A 4xx, a reply that breaks the contract or a request the kind cannot take: a retry would not help. */
function hopeless(err: unknown): boolean {
  if (err instanceof UpstreamError) return !err.retryable
  const status = (err as { statusCode?: number }).statusCode
  return err instanceof UnexpectedReplyError || (status !== undefined && status >= 400 && status < 500)
}

const NO_RESULT: RunResult = { removed: 0, errors: 0, details: {} }

/**
 * One run of one kind: record it, call the owning service (token, breaker, retries), record the outcome
 * with its cleanup.run.completed event, count it in Prometheus and log one line with no user data.
 */
export const cleanupRunnerPlugin = fp<CleanupRunnerOptions>(
  async (fastify, opts) => {
    const { runHistory, services, cleanupMetrics } = fastify

    const logOutcome = (job: Job, data: CleanupJobData, run: StartedRun, status: string, result: RunResult, ms: number, error: string | null) => {
      const line = {
        kind: data.kind,
        trigger: data.trigger,
        runId: run.id,
        jobId: job.id,
        attempt: run.attempts,
        status,
        cleanup_count: result.removed,
        duration_ms: ms,
        errors_encountered: result.errors,
        ...(error ? { error } : {})
      }
      if (status === 'succeeded') fastify.log.info(line, 'session cleanup completed')
      else fastify.log.warn(line, 'session cleanup failed')
    }

    const process = async (job: Job): Promise<RunResult> => {
      if (!Value.Check(CleanupJobData, job.data)) {
        fastify.log.error({ jobId: job.id, name: job.name }, 'cleanup job with invalid data dropped')
        throw new UnrecoverableError('invalid cleanup job data')
      }
      const data = job.data as CleanupJobData
      const run = await runHistory.begin(String(job.id), data)
      const started = performance.now()
      let result: RunResult
      try {
        const plan = planFor(data.kind, { olderThanSeconds: data.olderThanSeconds, batchSize: opts.batchSize, namedMaxAgeSeconds: opts.namedMaxAgeSeconds })
        result = summarize(data.kind, await services.call(plan.target, plan.path, { body: plan.body }))
      } catch (caught) {
        const err = hopeless(caught) ? new UnrecoverableError((caught as Error).message) : caught
        const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
        const status = final ? 'failed' : 'retrying'
        const message = (err as Error).message
        const ms = Math.round(performance.now() - started)
        await runHistory.finish(run, data, { status, ...NO_RESULT, error: message, details: null })
        cleanupMetrics.attempt(data.kind, status, ms / 1000, 0, 0)
        logOutcome(job, data, run, status, NO_RESULT, ms, message)
        throw err
      }
      const ms = Math.round(performance.now() - started)
      await runHistory.finish(run, data, { status: 'succeeded', ...result, error: null })
      cleanupMetrics.attempt(data.kind, 'succeeded', ms / 1000, result.removed, result.errors)
      logOutcome(job, data, run, 'succeeded', result, ms, null)
      // The worker's own history is kept in check the same way: a bounded delete per run.
      await runHistory.purge(opts.historyRetentionDays, 1000).catch((err) => fastify.log.warn({ err }, 'run history purge failed'))
      return result
    }

    fastify.decorate('cleanupRunner', { process })
  },
  { name: 'cleanup-runner', dependencies: ['run-history', 'service-client', 'cleanup-metrics'] }
)
