import fp from 'fastify-plugin'
import { Queue, Worker, type Job, type JobsOptions } from 'bullmq'
import { Redis } from 'ioredis'
import { createRedis } from '@platform/kit'
import { CleanupKinds, type CleanupJobData } from '@platform/contracts'
import { schedulerId, type Schedule } from '../domain/schedule.js'

export interface CleanupQueueOptions {
  redisUrl: string
  /** The producer's command timeout and unresponsive-Redis threshold (the kit's REDIS_* settings). */
  commandTimeoutMs: number
  failureThreshold: number
  /** BullMQ's key prefix: every replica of one deployment uses the same one (and the same queue name). */
  prefix: string
  name: string
  schedules: Schedule[]
  concurrency: number
  attempts: number
  backoffMs: number
  lockMs: number
  stalledIntervalMs: number
}

export interface CleanupQueue {
  /** Queues a manual run under its run id (the job id). Fails fast while Redis is down. */
  enqueue(runId: string, data: CleanupJobData): Promise<void>
  /** Whether the schedules are in place in Redis (set at start, retried until Redis answers). */
  readonly scheduled: boolean
  readonly queue: Queue
  readonly worker: Worker
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupQueue: CleanupQueue
  }
}

/** How long closing waits for BullMQ to let go once the running jobs are done (it can hang while Redis is down). */
const CLOSE_GRACE_MS = 3000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

/**
 * The BullMQ side: one queue, the kinds' job schedulers (upsertJobScheduler under ids shared by every
 * replica, so each iteration is one job run by one worker), and the worker that runs them. Closing
 * waits for the running jobs to finish (SIGTERM); a job cut off by a crash goes back to the queue
 * when its lock expires and is run again (runs are idempotent: the services clean what is still due).
 */
export const cleanupQueuePlugin = fp<CleanupQueueOptions>(
  async (fastify, opts) => {
    let lastError = ''
    let closing = false
    // Once closing, a lost connection is not retried: nothing is left to reconnect for.
    const retryStrategy = (times: number) => (closing ? null : Math.min(times * 200, 2000))
    const onError = (err: Error) => {
      // One line per distinct failure, not one per reconnect attempt.
      if (err.message !== lastError) fastify.log.warn({ err }, 'cleanup queue redis error')
      lastError = err.message
    }
    // The producer fails fast (an admin's run-now gets 503 at once); the worker waits out outages.
    // The kit's client: a frozen Redis fails a run-now after a few timeouts instead of holding it.
    const producer = createRedis(
      { url: opts.redisUrl, keyPrefix: '', commandTimeoutMs: opts.commandTimeoutMs, failureThreshold: opts.failureThreshold },
      onError
    )
    const consumer = new Redis(opts.redisUrl, { maxRetriesPerRequest: null, connectTimeout: 2000, retryStrategy })
    consumer.on('error', onError)
    consumer.on('ready', () => {
      lastError = ''
    })

    const jobOptions: JobsOptions = {
      attempts: opts.attempts,
      backoff: { type: 'exponential', delay: opts.backoffMs },
      removeOnComplete: { age: 24 * 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 1000 }
    }
    const queue = new Queue(opts.name, { connection: producer, prefix: opts.prefix, defaultJobOptions: jobOptions })
    queue.on('error', onError)
    // The runs in progress, awaited on close whatever state Redis is in: their outcome goes to Postgres.
    const running = new Set<Promise<unknown>>()
    const processor = (job: Job) => {
      const run = fastify.cleanupRunner.process(job)
      const tracked = run.catch(() => {}).finally(() => running.delete(tracked))
      running.add(tracked)
      return run
    }
    const worker = new Worker(opts.name, processor, {
      connection: consumer,
      prefix: opts.prefix,
      autorun: false,
      concurrency: opts.concurrency,
      lockDuration: opts.lockMs,
      stalledInterval: opts.stalledIntervalMs,
      maxStalledCount: 2,
      removeOnComplete: { age: 24 * 3600, count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600, count: 1000 }
    })
    worker.on('error', onError)

    let scheduled = false
    let retry: NodeJS.Timeout | undefined
    let failures = 0

    /** Upserts every configured kind's scheduler and removes those of kinds no longer scheduled. */
    const ensureSchedules = async () => {
      if (closing) return
      try {
        for (const s of opts.schedules) {
          const data: CleanupJobData = { kind: s.kind, trigger: 'scheduled' }
          await queue.upsertJobScheduler(schedulerId(s.kind), { every: s.intervalMs }, { name: s.kind, data, opts: jobOptions })
        }
        for (const kind of CleanupKinds) {
          if (!opts.schedules.some((s) => s.kind === kind)) await queue.removeJobScheduler(schedulerId(kind))
        }
        scheduled = true
        fastify.log.info({ schedules: opts.schedules.map((s) => ({ kind: s.kind, everyMs: s.intervalMs })) }, 'cleanup schedules in place')
      } catch (err) {
        if (failures++ % 30 === 0) fastify.log.warn({ err, failures }, 'could not set the cleanup schedules; retrying every second')
        retry = setTimeout(ensureSchedules, 1000)
      }
    }

    fastify.decorate('cleanupQueue', {
      async enqueue(runId, data) {
        await queue.add(data.kind, data, { ...jobOptions, jobId: runId })
      },
      get scheduled() {
        return scheduled
      },
      queue,
      worker
    })
    fastify.readiness.add('queue', { required: false, check: () => (consumer.status === 'ready' ? 'up' : 'down') })

    fastify.addHook('onReady', async () => {
      void ensureSchedules()
      worker.run().catch((err) => fastify.log.error({ err }, 'cleanup worker stopped'))
    })
    // Stops taking jobs and waits for the running ones: their outcome is recorded before Postgres,
    // the outbox and NATS close (their onClose hooks run after this one).
    fastify.addHook('onClose', async () => {
      closing = true
      clearTimeout(retry)
      const closed = worker.close()
      await Promise.all(running)
      const finished = await Promise.race([closed.then(() => true, () => true), sleep(CLOSE_GRACE_MS).then(() => false)])
      if (!finished) fastify.log.warn('the cleanup worker did not let go of Redis in time (is Redis down?); closing anyway')
      await Promise.race([queue.close().catch(() => {}), sleep(1000)])
      await Promise.all([producer, consumer].map((c) => (c.status === 'ready' ? c.quit().catch(() => c.disconnect()) : c.disconnect())))
    })
  },
  { name: 'cleanup-queue', dependencies: ['cleanup-runner', 'platform-health'] }
)
