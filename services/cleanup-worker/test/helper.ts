import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import Fastify, { type FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { fastifyOptions, loadConfig } from '@platform/kit'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  startServiceProcess,
  uniqueName,
  waitFor,
  type ServiceProcess,
  type TestSchema
} from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const repoRoot = join(import.meta.dirname, '..', '..', '..')
export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')

interface Tap {
  teardown(fn: () => unknown): void
}

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
  /** Closes the app now (the teardown then skips it): what SIGTERM does in server.ts. */
  close(): Promise<void>
}

/**
 * Timings short enough for tests; a test overrides what it exercises. Timeouts and waits that no test
 * exercises here are generous, so a busy machine never crosses one (a lost job lock reruns a job).
 */
export const FAST = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  DATABASE_POOL_SIZE: '3',
  DATABASE_TIMEOUT_MS: '5000',
  JWT_SECRET: TEST_JWT_SECRET,
  OUTBOX_POLL_MS: '50',
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

export interface Shared {
  schema: TestSchema
  /** REDIS_KEY_PREFIX and NATS_NAMESPACE: replicas of one deployment share them. */
  ns: string
}

/** A shared schema and namespace for replicas, dropped with the test. */
export async function shared(t: Tap): Promise<Shared> {
  const schema = await createTestSchema(migrationsDir, 'cleanup')
  const ns = uniqueName('cw')
  t.teardown(async () => {
    await schema.drop()
    await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => {})
    await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => {})
  })
  return { schema, ns }
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
export async function build(t: Tap, env: Record<string, string> = {}, with_?: Shared, opts: BuildOptions = {}): Promise<Built> {
  const own = with_ ?? (await shared(t))
  const config = loadConfig(ConfigSchema, {
    ...FAST,
    DATABASE_URL: own.schema.url,
    DATABASE_SCHEMA: own.schema.schema,
    REDIS_KEY_PREFIX: `${own.ns}:`,
    NATS_NAMESPACE: own.ns,
    ...env
  })
  const fastify = Fastify(fastifyOptions(config))
  // fp: the app's decorators (runHistory, cleanupQueue...) stay visible to the test.
  await fastify.register(fp(app), { config, ...(opts.now ? { now: opts.now } : {}), ...(opts.sleep ? { sleep: opts.sleep } : {}) })
  await fastify.ready()
  let closed: Promise<void> | null = null
  const close = () => (closed ??= fastify.close())
  t.teardown(close)
  // The schedules are upserted in the background (Redis may be down at start): tests start from them in place.
  if (opts.awaitSchedules !== false) await waitFor(() => fastify.cleanupQueue.scheduled, 10_000, 20)
  return { app: fastify, config, schema: own.schema, close }
}

// ---- fake owning services -----------------------------------------------------------------------------

export interface Call {
  method: string
  path: string
  body: unknown
  sub: string | null
  roles: string[]
  at: number
}

export interface Answer {
  status: number
  body?: unknown
  /** Answer after this long (a slow cleanup). */
  delayMs?: number
  /** Answer once this settles: a cleanup the test holds up and lets go of at the moment it chooses. */
  until?: Promise<unknown>
  /** Reset the connection instead of answering. */
  reset?: boolean
}

/** Route key `METHOD /path` → the next answer (a function sees the call; a list is used up in order, the last one repeating). */
export type Script = Record<string, Answer | Answer[] | ((call: Call) => Answer)>

export interface FakeService {
  url: string
  calls: Call[]
  script: Script
  /** Refuses connections (the service is down) until `up()`. */
  down(): Promise<void>
  up(): Promise<void>
  close(): Promise<void>
}

/** The caller's claims (the fake trusts the signature: the real services verify it in their own tests). */
function who(req: IncomingMessage): { sub: string | null; roles: string[] } {
  const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')
  if (!m) return { sub: null, roles: [] }
  try {
    const p = JSON.parse(Buffer.from(m[1]!.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: string; roles?: string[] }
    return { sub: p.sub ?? null, roles: p.roles ?? [] }
  } catch {
    return { sub: null, roles: [] }
  }
}

/**
 * A stand-in for task-sessions or chat (or sessions' stats) on a real port: records every call and answers
 * what the test scripts; unscripted routes answer 404 like a route that does not exist yet.
 */
export async function fakeService(t: Tap, script: Script = {}): Promise<FakeService> {
  const calls: Call[] = []
  const used = new Map<string, number>()
  const sockets = new Set<Socket>()
  let server: Server | null = null
  let port = 0

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const path = (req.url ?? '/').split('?')[0]!
      const call: Call = { method: req.method ?? 'GET', path, body: text ? JSON.parse(text) : undefined, ...who(req), at: Date.now() }
      calls.push(call)
      const key = `${call.method} ${path}`
      const entry = fake.script[key]
      let answer: Answer
      if (!entry) answer = { status: 404, body: { error: 'Not Found', message: 'no route', code: 'NOT_FOUND', requestId: 'x' } }
      else if (typeof entry === 'function') answer = entry(call)
      else if (Array.isArray(entry)) {
        const i = used.get(key) ?? 0
        used.set(key, i + 1)
        answer = entry[Math.min(i, entry.length - 1)]!
      } else answer = entry
      const send = () => {
        if (answer.reset) return void req.socket.destroy()
        res.writeHead(answer.status, { 'content-type': 'application/json' })
        res.end(answer.body === undefined ? '' : JSON.stringify(answer.body))
      }
      if (answer.until) void answer.until.then(send, send)
      else if (answer.delayMs) setTimeout(send, answer.delayMs)
      else send()
    })
  }

  const up = async () => {
    if (server) return
    const s = createServer(handle)
    s.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => s.listen(port, '127.0.0.1', resolve))
    port = (s.address() as AddressInfo).port
    server = s
  }
  const down = async () => {
    const s = server
    server = null
    if (!s) return
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => s.close(() => resolve()))
  }
  await up()
  const fake: FakeService = { url: `http://127.0.0.1:${port}`, calls, script, down, up, close: down }
  t.teardown(down)
  return fake
}

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
    await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => {})
    await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => {})
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
    DATABASE_URL: deployment.schema.url,
    DATABASE_SCHEMA: deployment.schema.schema,
    REDIS_KEY_PREFIX: `${deployment.ns}:`,
    NATS_NAMESPACE: deployment.ns,
    ...env
  })
  t.teardown(() => worker.stop('SIGKILL'))
  return worker
}
