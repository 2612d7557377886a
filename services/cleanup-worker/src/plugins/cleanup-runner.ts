import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
import { UnrecoverableError, type Job } from 'bullmq'
import { Value } from 'typebox/value'
import { CleanupJobData } from '@platform/contracts'
import { planFor, summarize, UnexpectedReplyError, type RunResult } from '../domain/kinds.js'
import { reasonOf, UpstreamError, type ServiceClient } from './service-client.js'
import type { RunEnd, RunHistory, StartedRun } from './run-history.js'
import type { CleanupMetrics } from './cleanup-metrics.js'

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

export interface CleanupRunnerDeps extends CleanupRunnerOptions {
  runHistory: Pick<RunHistory, 'begin' | 'finish' | 'purge'>
  services: Pick<ServiceClient, 'call'>
  metrics: CleanupMetrics
  log: Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>
}

/** A 4xx, a reply that breaks the contract or a request the kind cannot take: a retry would not help. */
function hopeless(err: unknown): boolean {
  if (err instanceof UpstreamError) return !err.retryable
  if (err instanceof UnexpectedReplyError) return true
  const status = err instanceof Error && 'statusCode' in err && typeof err.statusCode === 'number' ? err.statusCode : undefined
  return status !== undefined && status >= 400 && status < 500
}

const NO_RESULT: RunResult = { removed: 0, errors: 0, details: {} }

interface Attempt {
  job: Job
  data: CleanupJobData
  run: StartedRun
  /** performance.now() when it began. */
  started: number
}

/**
 * One run of one kind: record it, call the owning service (token, breaker, retries), record the outcome
 * with its cleanup.run.completed event, count it in Prometheus and log one line with no user data.
 */
export function createCleanupRunner(deps: CleanupRunnerDeps): CleanupRunner {
  /** Records an attempt's end in the history and the metrics, and logs it. */
  const record = async ({ job, data, run, started }: Attempt, status: RunEnd['status'], result: RunResult, error: string | null) => {
    const ms = Math.round(performance.now() - started)
    await deps.runHistory.finish(run, data, { status, ...result, error, details: status === 'succeeded' ? result.details : null })
    deps.metrics.attempt(data.kind, status, ms / 1000, result.removed, result.errors)
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
    if (status === 'succeeded') deps.log.info(line, 'session cleanup completed')
    else deps.log.warn(line, 'session cleanup failed')
  }

  const call = async (data: CleanupJobData): Promise<RunResult> => {
    const plan = planFor(data.kind, {
      olderThanSeconds: data.olderThanSeconds,
      batchSize: deps.batchSize,
      namedMaxAgeSeconds: deps.namedMaxAgeSeconds
    })
    return summarize(data.kind, await deps.services.call(plan.target, plan.path, { body: plan.body }))
  }

  return {
    async process(job) {
      const data: unknown = job.data
      if (!Value.Check(CleanupJobData, data)) {
        deps.log.error({ jobId: job.id, name: job.name }, 'cleanup job with invalid data dropped')
        throw new UnrecoverableError('invalid cleanup job data')
      }
      const attempt: Attempt = { job, data, run: await deps.runHistory.begin(String(job.id), data), started: performance.now() }
      let result: RunResult
      try {
        result = await call(data)
      } catch (caught) {
        const err = hopeless(caught) ? new UnrecoverableError(reasonOf(caught)) : caught
        const final = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1)
        await record(attempt, final ? 'failed' : 'retrying', NO_RESULT, reasonOf(err))
        throw err
      }
      await record(attempt, 'succeeded', result, null)
      // The worker's own history is kept in check the same way: a bounded delete per run.
      await deps.runHistory.purge(deps.historyRetentionDays, 1000).catch((err) => deps.log.warn({ err }, 'run history purge failed'))
      return result
    }
  }
}

export const cleanupRunnerPlugin = fp<CleanupRunnerOptions>(
  async (fastify, opts) => {
    const { runHistory, services, cleanupMetrics: metrics, log } = fastify
    fastify.decorate('cleanupRunner', createCleanupRunner({ ...opts, runHistory, services, metrics, log }))
  },
  { name: 'cleanup-runner', dependencies: ['run-history', 'service-client', 'cleanup-metrics'] }
)
