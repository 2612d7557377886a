import fp from 'fastify-plugin'
import type { FastifyBaseLogger } from 'fastify'
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

/** The queue as its owner holds it: started, checked and closed. */
export interface OwnedCleanupQueue extends CleanupQueue {
  /** Whether the worker's connection to Redis is up (the `queue` readiness check). */
  connected(): boolean
  /** Puts the schedules in place (retrying until Redis answers) and starts taking jobs. */
  start(): void
  /** Stops taking jobs, waits for the running ones, then lets go of Redis. */
  close(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    cleanupQueue: CleanupQueue
  }
}

type Log = Pick<FastifyBaseLogger, 'info' | 'warn' | 'error'>

export interface CleanupQueueDeps extends CleanupQueueOptions {
  /** Runs one job: the cleanup runner's processor. */
  process: (job: Job) => Promise<unknown>
  log: Log
}

/** How long closing waits for BullMQ to let go once the running jobs are done (it can hang while Redis is down). */
const CLOSE_GRACE_MS = 3000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

const KEEP = { removeOnComplete: { age: 24 * 3600, count: 1000 }, removeOnFail: { age: 7 * 24 * 3600, count: 1000 } }

/** One log line per distinct Redis failure, not one per reconnect attempt. */
function redisErrors(log: Log) {
  let last = ''
  return {
    report: (err: Error) => {
      if (err.message !== last) log.warn({ err }, 'cleanup queue redis error')
      last = err.message
    },
    reset: () => {
      last = ''
    }
  }
}

/** The producer fails fast (an admin's run-now gets 503 at once); the worker's connection waits out outages. */
function connect(deps: CleanupQueueDeps, errors: ReturnType<typeof redisErrors>, closing: () => boolean) {
  // The kit's client: a frozen Redis fails a run-now after a few timeouts instead of holding it.
  const producer = createRedis(
    { url: deps.redisUrl, keyPrefix: '', commandTimeoutMs: deps.commandTimeoutMs, failureThreshold: deps.failureThreshold },
    errors.report
  )
  // Once closing, a lost connection is not retried: nothing is left to reconnect for.
  const retryStrategy = (times: number) => (closing() ? null : Math.min(times * 200, 2000))
  const consumer = new Redis(deps.redisUrl, { maxRetriesPerRequest: null, connectTimeout: 2000, retryStrategy })
  consumer.on('error', errors.report)
  consumer.on('ready', errors.reset)
  return { producer, consumer }
}

/** The runs in progress, awaited on close whatever state Redis is in: their outcome goes to Postgres. */
function runTracker(process: (job: Job) => Promise<unknown>) {
  const running = new Set<Promise<unknown>>()
  return {
    processor: (job: Job) => {
      const run = process(job)
      // BullMQ gets the run's error through `run`; this copy only tells when the run has settled.
      const settled = run.catch(() => {}).finally(() => running.delete(settled))
      running.add(settled)
      return run
    },
    settled: () => Promise.all(running)
  }
}

/** Upserts every configured kind's scheduler and removes the others', retrying every second until Redis answers. */
function scheduleKeeper(queue: Queue, deps: CleanupQueueDeps, jobOptions: JobsOptions, closing: () => boolean) {
  let inPlace = false
  let retry: NodeJS.Timeout | undefined
  let failures = 0
  const ensure = async (): Promise<void> => {
    if (closing()) return
    try {
      for (const s of deps.schedules) {
        const data: CleanupJobData = { kind: s.kind, trigger: 'scheduled' }
        await queue.upsertJobScheduler(schedulerId(s.kind), { every: s.intervalMs }, { name: s.kind, data, opts: jobOptions })
      }
      for (const kind of CleanupKinds) {
        if (!deps.schedules.some((s) => s.kind === kind)) await queue.removeJobScheduler(schedulerId(kind))
      }
      inPlace = true
      deps.log.info({ schedules: deps.schedules.map((s) => ({ kind: s.kind, everyMs: s.intervalMs })) }, 'cleanup schedules in place')
    } catch (err) {
      if (failures++ % 30 === 0) deps.log.warn({ err, failures }, 'could not set the cleanup schedules; retrying every second')
      retry = setTimeout(() => void ensure(), 1000)
    }
  }
  return {
    ensure,
    stop: () => clearTimeout(retry),
    inPlace: () => inPlace
  }
}

/**
 * The BullMQ side: one queue, the kinds' job schedulers (upsertJobScheduler under ids shared by every
 * replica, so each iteration is one job run by one worker), and the worker that runs them. Closing
 * waits for the running jobs to finish (SIGTERM); a job cut off by a crash goes back to the queue
 * when its lock expires and is run again (runs are idempotent: the services clean what is still due).
 */
export function createCleanupQueue(deps: CleanupQueueDeps): OwnedCleanupQueue {
  let closing = false
  const isClosing = () => closing
  const errors = redisErrors(deps.log)
  const { producer, consumer } = connect(deps, errors, isClosing)
  const jobOptions: JobsOptions = { attempts: deps.attempts, backoff: { type: 'exponential', delay: deps.backoffMs }, ...KEEP }
  const queue = new Queue(deps.name, { connection: producer, prefix: deps.prefix, defaultJobOptions: jobOptions })
  queue.on('error', errors.report)
  const runs = runTracker(deps.process)
  const worker = new Worker(deps.name, runs.processor, {
    connection: consumer,
    prefix: deps.prefix,
    autorun: false,
    concurrency: deps.concurrency,
    lockDuration: deps.lockMs,
    stalledInterval: deps.stalledIntervalMs,
    maxStalledCount: 2,
    ...KEEP
  })
  worker.on('error', errors.report)
  const schedules = scheduleKeeper(queue, deps, jobOptions, isClosing)

  return {
    async enqueue(runId, data) {
      await queue.add(data.kind, data, { ...jobOptions, jobId: runId })
    },
    get scheduled() {
      return schedules.inPlace()
    },
    queue,
    worker,
    connected: () => consumer.status === 'ready',
    start() {
      void schedules.ensure()
      worker.run().catch((err) => deps.log.error({ err }, 'cleanup worker stopped'))
    },
    async close() {
      closing = true
      schedules.stop()
      const closed = worker.close()
      await runs.settled()
      const letGo = closed.then(
        () => true,
        (err) => {
          deps.log.warn({ err }, 'closing the cleanup worker failed')
          return true
        }
      )
      if (!(await Promise.race([letGo, sleep(CLOSE_GRACE_MS).then(() => false)]))) {
        deps.log.warn('the cleanup worker did not let go of Redis in time (is Redis down?); closing anyway')
      }
      const queueClosed = queue.close().catch((err) => deps.log.warn({ err }, 'closing the cleanup queue failed'))
      await Promise.race([queueClosed, sleep(1000)])
      const release = (c: Redis) =>
        c.status === 'ready'
          ? c.quit().then(
              () => undefined,
              () => c.disconnect()
            )
          : Promise.resolve(c.disconnect())
      await Promise.all([release(producer), release(consumer)])
    }
  }
}

/** `fastify.cleanupQueue`: started once the app is ready, closed before Postgres, the outbox and NATS. */
export const cleanupQueuePlugin = fp<CleanupQueueOptions>(
  async (fastify, opts) => {
    const queue = createCleanupQueue({ ...opts, process: (job) => fastify.cleanupRunner.process(job), log: fastify.log })
    fastify.decorate('cleanupQueue', queue)
    fastify.readiness.add('queue', { required: false, check: () => (queue.connected() ? 'up' : 'down') })
    fastify.addHook('onReady', async () => queue.start())
    // Stops taking jobs and waits for the running ones: their outcome is recorded before Postgres,
    // the outbox and NATS close (their onClose hooks run after this one).
    fastify.addHook('onClose', async () => queue.close())
  },
  { name: 'cleanup-queue', dependencies: ['cleanup-runner', 'platform-health'] }
)
