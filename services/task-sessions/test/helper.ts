import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { connect, headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { TaskSubjects } from '@platform/contracts'
import { createEvent, ensureStream, namespaced, streamNameFor, type DeadLetter, type Envelope } from '@platform/kit'
import { buildService, sharedResources, waitFor, type Teardown, type TestSchema } from '@platform/kit/testing'
import { app } from '../src/app.js'
import { ConfigSchema, type Config } from '../src/config.js'

export const migrationsDir = join(import.meta.dirname, '..', 'prisma', 'migrations')
export const NATS_URL = 'nats://127.0.0.1:4222'

export interface Built {
  app: FastifyInstance
  config: Config
  schema: TestSchema
}

export interface BuildOptions {
  /** Share a schema (a second replica, a proxied URL): the caller drops it. */
  schema?: TestSchema
  /** Share a NATS namespace (a second replica): the caller deletes its streams. */
  namespace?: string
}

/**
 * The task-sessions app on its own schema and NATS namespace, torn down with the test. Consumer
 * backoffs and ack wait are short so that redeliveries happen within a test's time.
 */
export async function build(t: Teardown, env: Record<string, string> = {}, opts: BuildOptions = {}): Promise<Built> {
  const own = opts.schema
    ? { ...(await sharedResources(t, { prefix: 'ts' })), schema: opts.schema }
    : await sharedResources(t, { prefix: 'tasks', migrations: migrationsDir })
  const shared = { ...own, ns: opts.namespace ?? own.ns }
  const built = await buildService(t, {
    app,
    configSchema: ConfigSchema,
    shared,
    env: {
      DATABASE_TIMEOUT_MS: '1000',
      TASK_EVENTS_ACK_WAIT_MS: '2000',
      TASK_EVENTS_BACKOFF_MS: '50',
      TASK_EVENTS_MAX_BACKOFF_MS: '400',
      ...env
    }
  })
  return { app: built.app, config: built.config, schema: shared.schema }
}

/** Waits until the app's consumer is subscribed (so tests do not race its first pull). */
export async function consuming(app: FastifyInstance): Promise<void> {
  await waitFor(() => app.taskEvents?.running === true, 10_000, 20)
}

export interface Publisher {
  nc: NatsConnection
  /** Publishes a task event (envelope built here) and waits for the stream's ack. */
  publish(type: string, data: Record<string, unknown>, time?: Date): Promise<Envelope>
  /** Publishes raw bytes on a (namespaced) subject. */
  raw(type: string, payload: string): Promise<void>
  /**
   * Publishes a message as another producer would: NATS headers (e.g. `ce-` attributes of binary
   * mode) and a body, with no Nats-Msg-Id, so the stream keeps duplicates and the consumer must
   * handle them.
   */
  message(type: string, message: { headers: Record<string, string>; body: string }): Promise<void>
}

/** A producer on the test's namespace; the TASKS stream is created if the app has not yet. */
export async function publisher(t: Teardown, namespace: string, url = NATS_URL): Promise<Publisher> {
  const nc = await connect({ servers: url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 })
  t.teardown(() => nc.close())
  await ensureStream(await jetstreamManager(nc), namespace, 'tasks')
  const js = jetstream(nc, { timeout: 5000 })
  return {
    nc,
    async publish(type, data, time) {
      const event = createEvent(type, '/test-producer', data)
      if (time) event.time = time.toISOString()
      await js.publish(namespaced(namespace, type), JSON.stringify(event), { msgID: event.id })
      return event
    },
    async raw(type, payload) {
      await js.publish(namespaced(namespace, type), payload)
    },
    async message(type, message) {
      const h = natsHeaders()
      for (const [name, value] of Object.entries(message.headers)) h.set(name, value)
      await js.publish(namespaced(namespace, type), message.body, { headers: h })
    }
  }
}

/** Every dead letter in the namespace's DEAD_LETTER stream, in order, with the subject it was published on. */
export async function deadLetters(nc: NatsConnection, namespace: string): Promise<Array<DeadLetter & { on: string }>> {
  const jsm = await jetstreamManager(nc)
  const stream = streamNameFor(namespace, 'deadLetter')
  const { state } = await jsm.streams.info(stream)
  const letters: Array<DeadLetter & { on: string }> = []
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq })
    if (m) letters.push({ ...m.json<DeadLetter>(), on: m.subject })
  }
  return letters
}

/** Builds a task lifecycle event without publishing it (HTTP intake, domain tests). */
export function taskEvent(type: string, data: Record<string, unknown>, time?: Date): Envelope {
  const event = createEvent(type, '/test-producer', data)
  if (time) event.time = time.toISOString()
  return event
}

export const T = TaskSubjects

/** The `taskId` of an event's data, if it has one. */
export const taskIdOf = (data: unknown): string | undefined =>
  typeof data === 'object' && data !== null && 'taskId' in data && typeof data.taskId === 'string' ? data.taskId : undefined

/** Every session as `taskId:status`, sorted: how tests compare final states exactly. */
export async function sessionStates(schema: TestSchema): Promise<string[]> {
  const { rows } = await schema.query<{ s: string }>("SELECT task_id || ':' || status AS s FROM task_sessions ORDER BY task_id")
  return rows.map((r) => r.s)
}

/** The outbox's events as `type taskId [reason]`, in commit order. */
export async function outboxEvents(schema: TestSchema): Promise<string[]> {
  const { rows } = await schema.query<{ type: string; envelope: { data: { taskId: string; reason?: string } } }>(
    'SELECT type, envelope FROM outbox ORDER BY seq'
  )
  return rows.map((r) => [r.type, r.envelope.data.taskId, r.envelope.data.reason].filter(Boolean).join(' '))
}

export interface ScriptEvent {
  type: string
  data: Record<string, unknown>
  time: Date
}

/**
 * A mixed stream for `tasks` tasks: ordinary tasks created then completed/failed/cancelled, scenario
 * tasks that complete or fail (and are saved for half the short ids), scraping tasks and tasks left
 * running. `expected` is the exact final state, worked out from the rules by hand.
 */
export function lifecycleScript(prefix: string, tasks: number): { events: ScriptEvent[]; expected: string[] } {
  const start = Date.now() - 3_600_000
  const at = (i: number) => new Date(start + i)
  const events: ScriptEvent[] = []
  const expected: string[] = []
  const shorts = 10
  const saved = (s: number) => s % 2 === 0
  for (let i = 0; i < tasks; i++) {
    const taskId = `${prefix}-${String(i).padStart(5, '0')}`
    const shortId = `${prefix}-sh${i % shorts}`
    const kind = i % 6
    const taskType = ['image_analysis', 'scenario_generation', 'scenario_generation', 'video_generation', 'scraping', 'data_extraction'][kind]!
    const base = { taskId, taskType, shortId, userId: `u${i % 3}` }
    events.push({ type: TaskSubjects.created, data: base, time: at(i) })
    if (kind === 0) events.push({ type: TaskSubjects.completed, data: base, time: at(i) })
    if (kind === 1) events.push({ type: TaskSubjects.completed, data: base, time: at(i) })
    if (kind === 2) events.push({ type: TaskSubjects.failed, data: base, time: at(i) })
    if (kind === 4) events.push({ type: TaskSubjects.completed, data: base, time: at(i) })
    if (kind === 5) events.push({ type: i % 12 === 5 ? TaskSubjects.cancelled : TaskSubjects.failed, data: base, time: at(i) })
    if (kind === 1 && !saved(i % shorts)) expected.push(`${taskId}:completed`)
    if (kind === 2 && !saved(i % shorts)) expected.push(`${taskId}:failed`)
    if (kind === 3) expected.push(`${taskId}:active`)
  }
  for (let s = 0; s < shorts; s++) {
    if (saved(s)) events.push({ type: TaskSubjects.scenarioSaved, data: { shortId: `${prefix}-sh${s}` }, time: at(tasks + 1) })
  }
  return { events, expected: expected.sort() }
}
