import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { Value } from 'typebox/value'
import { CleanupRunCompletedData } from '@platform/contracts'
import {
  TEST_JWT_SECRET,
  TEST_NATS_URL,
  TEST_REDIS_URL,
  buildService,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  sharedResources,
  uniqueName,
  startServiceProcess,
  waitFor,
  type ServiceProcess,
  type Shared as SharedResources,
  type Teardown,
  type TestSchema
} from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const repoRoot = join(import.meta.dirname, '..', '..', '..')
export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

type Tap = Teardown

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
  /** Closes the app now (the teardown then skips it): what SIGTERM does in server.ts. */
  close: () => Promise<void>
}

/**
 * Timings short enough for tests; a test overrides what it exercises. Timeouts and waits that no test
 * exercises here are generous, so a busy machine never crosses one (a lost job lock reruns a job).
 */
export const FAST = {
  CLEANUP_SCHEDULES: 'none',
  CLEANUP_JOB_ATTEMPTS: '1',
  CLEANUP_JOB_BACKOFF_MS: '50',
  CLEANUP_JOB_LOCK_MS: '30000',
  CLEANUP_STALLED_INTERVAL_MS: '1000',
  CLEANUP_CALL_TIMEOUT_MS: '30000',
  CLEANUP_CALL_RETRIES: '0',
  CLEANUP_RETRY_BASE_MS: '20',
  CLEANUP_RETRY_MAX_MS: '100',
  CLEANUP_BREAKER_RESET_MS: '100',
  CLEANUP_STATS_TIMEOUT_MS: '10000',
  CLEANUP_STATS_CACHE_MS: '0',
  CLEANUP_RUN_WAIT_MS: '25000',
  // Nothing listens on port 1: a test points the kinds it exercises at its own fakes.
  SESSIONS_URL: 'http://127.0.0.1:1',
  TASK_SESSIONS_URL: 'http://127.0.0.1:1',
  CHAT_URL: 'http://127.0.0.1:1'
}

/** A schema, BullMQ prefix (under REDIS_KEY_PREFIX) and NATS namespace that replicas share. */
export type Shared = Required<SharedResources>

/** A shared schema and namespace for replicas, dropped with the test. */
export async function shared(t: Teardown): Promise<Shared> {
  return sharedResources(t, { prefix: 'cleanup', migrations: migrationsDir })
}

export interface BuildOptions {
  /** Wait until the schedules are in Redis [true]. */
  awaitSchedules?: boolean
  /** The worker's clock for its health's overdue check: a test moves it instead of waiting intervals. */
  now?: () => number
  /** The service client's wait before a retry: a test records the waits instead. */
  sleep?: (ms: number) => Promise<void>
}

/**
 * The worker app on its own schema, BullMQ prefix (under REDIS_KEY_PREFIX) and NATS namespace, torn
 * down with the test; replicas pass the same `Shared`. `env` overrides variables.
 */
export async function build(t: Teardown, env: Record<string, string> = {}, with_?: Shared, opts: BuildOptions = {}): Promise<Built> {
  const own = with_ ?? (await shared(t))
  const built = await buildService(t, {
    app,
    configSchema: ConfigSchema,
    shared: own,
    env: { ...FAST, ...env },
    options: { ...(opts.now ? { now: opts.now } : {}), ...(opts.sleep ? { sleep: opts.sleep } : {}) }
  })
  // The schedules are upserted in the background (Redis may be down at start): tests start from them in place.
  if (opts.awaitSchedules !== false) await waitFor(() => built.app.cleanupQueue.scheduled, 10_000, 20)
  return { app: built.app, config: built.config, schema: own.schema, close: () => built.close() }
}

// ---- fake owning services: test/fake-service.ts --------------------------------------------------------

export { fakeService, type Answer, type Call, type FakeService, type Script } from './fake-service.js'

// ---- the real sessions service, as its own process ------------------------------------------------------

export interface SessionsProcess extends ServiceProcess {
  schema: TestSchema
}

/** The real sessions service as its own process on its own schema (services never import each other). */
export async function startSessions(t: Tap, env: Record<string, string> = {}): Promise<SessionsProcess> {
  const schema = await createTestSchema(join(repoRoot, 'services/sessions/prisma/migrations'), 'cw_sessions')
  const ns = uniqueName('cws')
  const sessions = await startServiceProcess('sessions', {
    DATABASE_URL: schema.url,
    DATABASE_SCHEMA: schema.schema,
    DATABASE_POOL_SIZE: '3',
    REDIS_KEY_PREFIX: `${ns}:`,
    NATS_NAMESPACE: ns,
    JWT_SECRET: TEST_JWT_SECRET,
    ...env
  })
  t.teardown(async () => {
    await sessions.stop()
    await schema.drop()
    // Best effort, as the kit's own sharedResources: what is left there expires with the test servers.
    await deleteRedisKeys(TEST_REDIS_URL, `${ns}:`).catch(() => undefined)
    await deleteStreams(TEST_NATS_URL, ns).catch(() => undefined)
  })
  return { ...sessions, schema }
}

/** Sends a JSON request to a service the way another service would. */
export async function callJson(url: string, method: string, token: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  const text = await res.text()
  return { status: res.status, json: text ? JSON.parse(text) : null }
}

/** The `removed`/`errors`/`status` of every run of a kind, oldest first. */
export async function runsOf(schema: TestSchema, kind?: string) {
  const { rows } = await schema.query<{
    id: string
    job_id: string
    kind: string
    trigger: string
    status: string
    removed: number
    errors: number
    attempts: number
    error: string | null
  }>(
    `SELECT id, job_id, kind::text, trigger::text, status::text, removed, errors, attempts, error FROM cleanup_runs
      ${kind ? 'WHERE kind = $1::"CleanupKind"' : ''} ORDER BY created_at, job_id`,
    kind ? [kind] : []
  )
  return rows
}

/** Finds the cleanup.run.completed event of run `runId` (its data checked against the contract). */
export const ofRun = (runId: string) => (event: { data: unknown }) => Value.Check(CleanupRunCompletedData, event.data) && event.data.runId === runId

/** The `id` of a reply that must carry one (a run). */
export function idOf(reply: unknown): string {
  if (!Value.Check(Type.Object({ id: Type.String() }), reply)) throw new Error(`no id in ${JSON.stringify(reply)}`)
  return reply.id
}

/** The sorted keys of a JSON object; none for anything else. */
export const keysOf = (value: unknown): string[] => (typeof value === 'object' && value !== null ? Object.keys(value).sort() : [])

/** Standard replies of the owning services' cleanups. */
export const replies = {
  task: (removed: number, errors = 0) => ({ removed, batches: removed ? 1 : 0, errors, durationMs: 3, finishedTasksPurged: 0 }),
  chat: (expired: number, removedSessions: number) => ({ expired, removedSessions, removedMessages: removedSessions * 2, batches: 1 })
}

// ---- the worker itself as a process (SIGTERM and crash tests) --------------------------------------------

/** `services/cleanup-worker/src/server.ts` as its own process on a deployment's schema and namespace. */
export async function startWorker(t: Tap, deployment: Shared, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const worker = await startServiceProcess('cleanup-worker', {
    ...FAST,
    LOG_LEVEL: 'warn',
    JWT_SECRET: TEST_JWT_SECRET,
    OUTBOX_POLL_MS: '50',
    DATABASE_POOL_SIZE: '3',
    DATABASE_TIMEOUT_MS: '5000',
    DATABASE_URL: deployment.schema.url,
    DATABASE_SCHEMA: deployment.schema.schema,
    REDIS_KEY_PREFIX: `${deployment.ns}:`,
    NATS_NAMESPACE: deployment.ns,
    ...env
  })
  t.teardown(() => worker.stop('SIGKILL'))
  return worker
}
