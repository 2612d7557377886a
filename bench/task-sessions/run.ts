/**
 * bench/task-sessions: 100,000 task lifecycle events published to JetStream (most tasks created then
 * finished, scenario tasks that complete/fail and are saved, scraping, duplicates, tasks left running).
 * The stream is filled first; then the replicas start (child processes sharing the durable consumer) and
 * the clock runs from the consumer's creation until the database holds exactly the expected final state
 * (checked by query: row count and a digest of every task_id:status). One replica, then two; each run
 * has its own schema and NATS namespace.
 */
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { connect } from '@nats-io/transport-node'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { TaskSubjects } from '@platform/contracts'
import { createEvent, ensureStream, namespaced, streamNameFor } from '@platform/kit'
import { TEST_JWT_SECRET, createTestSchema, deleteStreams, freePort, testToken, uniqueName, waitFor, type TestSchema } from '@platform/kit/testing'
import { fmt, printTable } from '../lib/report.js'
import { repoRoot, startNode, stop } from '../lib/processes.js'

const TOTAL = Number(process.env.BENCH_EVENTS ?? 100_000)
const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222'
const SHORTS = 5000
/** A task's end is published this many tasks after its creation, so both rarely share a pull batch. */
const LAG = 2000

interface Planned {
  type: string
  data: Record<string, unknown>
  time: number
}

/** The event stream and the exact final state the rules give for it (worked out here, not by the service). */
function script(prefix: string): { events: Planned[]; expected: string[] } {
  const base = Date.now() - 3_600_000
  const created: Planned[][] = []
  const ended: Planned[][] = []
  const expected: string[] = []
  const ordinary = ['image_analysis', 'video_generation', 'finalize_short', 'save_scenario', 'content_analysis', 'data_extraction']
  const saved = (s: number) => s % 4 === 0
  let count = SHORTS / 4 // the saves, published last
  for (let i = 0; count < TOTAL; i++) {
    const k = i % 20
    const s = i % SHORTS
    const taskId = `${prefix}-${i}`
    const shortId = `${prefix}-s${s}`
    const taskType = k === 14 || k === 15 ? 'scenario_generation' : k === 16 ? 'scraping' : ordinary[i % ordinary.length]!
    const data = { taskId, taskType, userId: `u${i % 100}`, ...(k === 18 ? {} : { shortId }) }
    const mine: Planned[] = [{ type: TaskSubjects.created, data, time: base + i }]
    const ends: Planned[] = []
    if (k === 14) ends.push({ type: TaskSubjects.completed, data, time: base + i })
    else if (k === 15) ends.push({ type: TaskSubjects.failed, data, time: base + i })
    else if (k === 19) ends.push({ type: TaskSubjects.completed, data, time: base + i }, { type: TaskSubjects.completed, data, time: base + i })
    else if (k !== 17)
      ends.push({ type: i % 7 === 0 ? TaskSubjects.cancelled : i % 5 === 0 ? TaskSubjects.failed : TaskSubjects.completed, data, time: base + i })
    const take = Math.min(TOTAL - count, 1 + ends.length)
    created.push(mine.slice(0, take))
    ended.push(ends.slice(0, take - 1))
    count += take
    // The last task may be cut short to land on exactly TOTAL events: what was published decides.
    const finished = take > 1
    const scenario = taskType === 'scenario_generation'
    if (k === 16 || k === 18 || (scenario && saved(s))) continue
    if (!finished) expected.push(`${taskId}:active`)
    else if (scenario) expected.push(`${taskId}:${k === 14 ? 'completed' : 'failed'}`)
  }
  const events: Planned[] = []
  for (let i = 0; i < created.length + LAG; i++) {
    if (i < created.length) events.push(...created[i]!)
    if (i >= LAG) events.push(...ended[i - LAG]!)
  }
  const last = base + created.length + 1000
  for (let s = 0; s < SHORTS; s += 4) events.push({ type: TaskSubjects.scenarioSaved, data: { shortId: `${prefix}-s${s}` }, time: last })
  return { events, expected: expected.sort() }
}

const digest = (lines: string[]) => createHash('md5').update(lines.join(',')).digest('hex')

async function atFinalState(schema: TestSchema, expected: string[], expectedDigest: string): Promise<boolean> {
  const { rows } = await schema.query<{ n: number }>('SELECT count(*)::int AS n FROM task_sessions')
  if (rows[0]!.n !== expected.length) return false
  const d = await schema.query<{ d: string }>(
    "SELECT md5(coalesce(string_agg(x, ',' ORDER BY x COLLATE \"C\"), '')) AS d FROM (SELECT task_id || ':' || status::text AS x FROM task_sessions) s"
  )
  return d.rows[0]!.d === expectedDigest
}

interface RunResult {
  seconds: number
  publishSeconds: number
  rate: number
  rows: number
  outboxConsistent: boolean
  perReplica: number[]
}

async function run(replicas: number): Promise<RunResult> {
  const prefix = `r${replicas}`
  const { events, expected } = script(prefix)
  if (events.length !== TOTAL) throw new Error(`script made ${events.length} events, not ${TOTAL}`)
  const expectedDigest = digest([...expected].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
  const schema = await createTestSchema(join(repoRoot, 'services/task-sessions/prisma/migrations'), 'bench_tasks')
  const ns = uniqueName('benchts')
  const nc = await connect({ servers: NATS_URL })
  const children: ChildProcess[] = []
  const ports: number[] = []
  try {
    const jsm = await jetstreamManager(nc)
    await ensureStream(jsm, ns, 'tasks')
    const js = jetstream(nc, { timeout: 30_000 })
    const payloads = events.map((e) => {
      const env = createEvent(e.type, '/bench-producer', e.data)
      env.time = new Date(e.time).toISOString()
      return { subject: namespaced(ns, e.type), body: JSON.stringify(env), id: env.id }
    })
    // The stream is filled first, so the figure is the consumer's own throughput, not the publisher's.
    const publishStart = performance.now()
    for (let i = 0; i < payloads.length; i += 1000) {
      await Promise.all(payloads.slice(i, i + 1000).map((p) => js.publish(p.subject, p.body, { msgID: p.id })))
    }
    const publishSeconds = (performance.now() - publishStart) / 1000
    const { state } = await jsm.streams.info(streamNameFor(ns, 'tasks'))
    if (state.messages !== TOTAL) throw new Error(`the stream holds ${state.messages} events, not ${TOTAL}`)

    // Replicas start together; the clock starts when the durable consumer is created (server time).
    for (let r = 0; r < replicas; r++) ports.push(await freePort())
    const starting = ports.map((port) =>
      startNode(
        'services/task-sessions/src/server.ts',
        {
          PORT: String(port),
          HOST: '127.0.0.1',
          DATABASE_URL: schema.url,
          DATABASE_SCHEMA: schema.schema,
          DATABASE_POOL_SIZE: '5',
          NATS_URL,
          NATS_NAMESPACE: ns,
          JWT_SECRET: TEST_JWT_SECRET
        },
        `http://127.0.0.1:${port}/health`
      ).then((child) => children.push(child))
    )
    const info = await waitFor(() => jsm.consumers.info(streamNameFor(ns, 'tasks'), 'task-sessions').catch(() => null), 60_000, 20)
    await Promise.all(starting)
    await waitFor(() => atFinalState(schema, expected, expectedDigest), 170_000, 100)
    const seconds = (Date.now() - Date.parse(info.created)) / 1000

    // After the fact: every event acked, and the outbox agrees with the table.
    await waitFor(
      async () => {
        const info = await jsm.consumers.info(streamNameFor(ns, 'tasks'), 'task-sessions')
        return info.num_pending === 0 && info.num_ack_pending === 0
      },
      30_000,
      200
    )
    const perReplica: number[] = []
    for (const port of ports) {
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      perReplica.push(Number(/event_consumer_processed_total\{consumer="task-sessions"\} (\d+)/.exec(metrics)?.[1] ?? 0))
    }
    const { rows } = await schema.query<{ created: number; removed: number; n: number }>(
      `SELECT count(*) FILTER (WHERE type = 'sessions.task.created')::int AS created,
              count(*) FILTER (WHERE type = 'sessions.task.removed')::int AS removed,
              (SELECT count(*)::int FROM task_sessions) AS n FROM outbox`
    )
    const o = rows[0]!
    return {
      seconds,
      publishSeconds,
      rate: TOTAL / seconds,
      rows: expected.length,
      outboxConsistent: o.created - o.removed === o.n,
      perReplica
    }
  } finally {
    for (const c of children) await stop(c)
    await nc.close()
    // Best effort: what is left of a run's own prefix or namespace harms nothing.
    await deleteStreams(NATS_URL, ns).catch(() => undefined)
    await schema.drop()
  }
}

const CLEANUP_ROWS = Number(process.env.BENCH_CLEANUP_ROWS ?? 1_000_000)

/** POST /internal/cleanup over CLEANUP_ROWS finished sessions (plus active ones), with a reader running. */
async function cleanupRun(): Promise<{ seconds: number; removed: number; batches: number; kept: number; p50: number; p99: number; reads: number }> {
  const schema = await createTestSchema(join(repoRoot, 'services/task-sessions/prisma/migrations'), 'bench_cleanup')
  let child: ChildProcess | undefined
  try {
    await schema.query(
      `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
       SELECT 'done-' || g, 's-' || (g % 50000), 'scenario_generation', 'u' || (g % 1000),
              CASE WHEN g % 2 = 0 THEN 'completed' ELSE 'failed' END::"TaskSessionStatus",
              now() - interval '30 days' + g * interval '1 ms', now()
         FROM generate_series(1, $1::int) g`,
      [CLEANUP_ROWS]
    )
    await schema.query(
      `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
       SELECT 'open-' || g, 's-' || (g % 50000), 'image_analysis', 'u' || (g % 1000), 'active', now() - interval '30 days', now()
         FROM generate_series(1, 100000) g`
    )
    await schema.query('ANALYZE task_sessions')
    const port = await freePort()
    child = await startNode(
      'services/task-sessions/src/server.ts',
      {
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: schema.url,
        DATABASE_SCHEMA: schema.schema,
        NATS_URL,
        NATS_NAMESPACE: uniqueName('benchclean'),
        JWT_SECRET: TEST_JWT_SECRET,
        TASK_EVENTS_ENABLED: 'false'
      },
      `http://127.0.0.1:${port}/health`
    )
    const base = `http://127.0.0.1:${port}`
    const admin = { authorization: `Bearer ${testToken('bench-admin', ['admin'])}` }
    let cleaning = true
    const latencies: number[] = []
    const reader = (async () => {
      for (let i = 0; cleaning; i++) {
        const t0 = performance.now()
        const r = await fetch(`${base}/api/v1/task-sessions/s-${i % 50000}?limit=20`, { headers: admin })
        await r.arrayBuffer()
        if (r.status !== 200) throw new Error(`read answered ${r.status}`)
        latencies.push(performance.now() - t0)
      }
    })()
    const started = performance.now()
    const res = await fetch(`${base}/internal/cleanup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${testToken('cleanup-worker', ['service'])}`, 'content-type': 'application/json' },
      body: '{}'
    })
    const seconds = (performance.now() - started) / 1000
    cleaning = false
    await reader
    const body = (await res.json()) as { removed: number; batches: number }
    const { rows } = await schema.query<{ n: number }>("SELECT count(*)::int AS n FROM task_sessions WHERE status = 'active'")
    latencies.sort((a, b) => a - b)
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0
    return { seconds, removed: body.removed, batches: body.batches, kept: rows[0]!.n, p50: pct(0.5), p99: pct(0.99), reads: latencies.length }
  } finally {
    if (child) await stop(child)
    await schema.drop()
  }
}

const one = await run(1)
const two = await run(2)
const clean = await cleanupRun()
printTable(`bench/task-sessions: ${fmt(TOTAL)} task lifecycle events → exact final state`, [
  { figure: '1 replica: events/s (consumer created → final state)', value: fmt(one.rate), target: '≥ 3,000', met: one.rate >= 3000 },
  { figure: '1 replica: time to final state', value: `${fmt(one.seconds, 1)} s`, target: '' },
  { figure: '2 replicas: events/s (consumer created → final state)', value: fmt(two.rate), target: '' },
  { figure: '2 replicas: time to final state', value: `${fmt(two.seconds, 1)} s`, target: '' },
  { figure: '2 replicas: events handled by each', value: two.perReplica.map((n) => fmt(n)).join(' + '), target: '' },
  {
    figure: 'publishing the stream beforehand (not timed above)',
    value: `${fmt(TOTAL / one.publishSeconds)} / ${fmt(TOTAL / two.publishSeconds)} events/s`,
    target: ''
  },
  {
    figure: 'final sessions (checked by count + md5 of every task_id:status)',
    value: `${fmt(one.rows)} / ${fmt(two.rows)}`,
    target: 'exact',
    met: true
  },
  {
    figure: 'outbox: created − removed = rows left (both runs)',
    value: one.outboxConsistent && two.outboxConsistent ? 'yes' : 'no',
    target: 'yes',
    met: one.outboxConsistent && two.outboxConsistent
  },
  {
    figure: `cleanup: ${fmt(CLEANUP_ROWS)} finished sessions removed`,
    value: `${fmt(clean.removed)} in ${fmt(clean.seconds, 1)} s, ${fmt(clean.batches)} batches`,
    target: '< 60 s',
    met: clean.removed === CLEANUP_ROWS && clean.seconds < 60
  },
  { figure: 'cleanup: active sessions kept', value: fmt(clean.kept), target: '100,000', met: clean.kept === 100_000 },
  {
    figure: 'cleanup: GET by short id meanwhile',
    value: `${fmt(clean.reads)} reads, p50 ${fmt(clean.p50, 1)} ms, p99 ${fmt(clean.p99, 1)} ms`,
    target: ''
  }
])
process.exit(0)
