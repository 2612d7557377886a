/**
 * bench/cleanup: 1,000,000 finished task sessions older than the retention plus 100,000 live ones in a fresh
 * task-sessions schema; the task-sessions service runs as a child process and its cleanup
 * (POST /internal/cleanup, what the cleanup worker calls) removes the finished ones while autocannon reads
 * live sessions through the service (GET /api/v1/task-sessions/task/{taskId}, random live ids). Prints rows
 * removed per second, the total time, the readers' p99 before and during, and checks that every live row is
 * untouched (count and a digest of every column) and no finished row is left.
 */
import { join } from 'node:path'
import autocannon from 'autocannon'
import {
  TEST_JWT_SECRET,
  createTestSchema,
  deleteRedisKeys,
  deleteStreams,
  freePort,
  testToken,
  uniqueName,
  type TestSchema
} from '@platform/kit/testing'
import { fmt, printTable } from '../lib/report.js'
import { repoRoot, startNode, stop } from '../lib/processes.js'

const FINISHED = Number(process.env.BENCH_FINISHED ?? 1_000_000)
const LIVE = Number(process.env.BENCH_LIVE ?? 100_000)
const READERS = Number(process.env.BENCH_CONNECTIONS ?? 10)
const BASELINE_SECONDS = Number(process.env.BENCH_DURATION ?? 8)
const BATCH_SIZE = Number(process.env.BENCH_BATCH_SIZE ?? 5000)
const TARGET_SECONDS = 60

const token = testToken('cleanup-bench', ['service'])
const headers = { authorization: `Bearer ${token}` }

/** Drops the table's secondary indexes for the bulk load and gives back their definitions to rebuild them. */
async function dropIndexes(schema: TestSchema): Promise<string[]> {
  const { rows } = await schema.query<{ name: string; def: string }>(
    `SELECT indexname AS name, indexdef AS def FROM pg_indexes
      WHERE schemaname = $1 AND tablename = 'task_sessions' AND indexname <> 'task_sessions_pkey'`,
    [schema.schema]
  )
  for (const r of rows) await schema.query(`DROP INDEX "${schema.schema}"."${r.name}"`)
  return rows.map((r) => r.def)
}

/** Finished sessions 8..38 days old (retention 7 days); live ones of every age, some older than the retention. */
async function fill(schema: TestSchema): Promise<void> {
  const defs = await dropIndexes(schema)
  const types = `(ARRAY['image_analysis','video_generation','finalize_short','save_scenario','content_analysis','data_extraction','scenario_generation'])`
  await schema.query(
    `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
     SELECT 'done-' || g, 's' || (g % 50000), ${types}[1 + g % 7]::"TaskType", 'u' || (g % 1000),
            (CASE WHEN g % 5 = 0 THEN 'failed' ELSE 'completed' END)::"TaskSessionStatus",
            now() - interval '8 days' - (g % 2592000) * interval '1 second', now() - interval '8 days'
       FROM generate_series(1, $1::int) AS g`,
    [FINISHED]
  )
  await schema.query(
    `INSERT INTO task_sessions (task_id, short_id, task_type, user_id, status, created_at, updated_at)
     SELECT 'live-' || g, 's' || (g % 50000), ${types}[1 + g % 7]::"TaskType", 'u' || (g % 1000), 'active',
            now() - (g % 3283200) * interval '1 second', now()
       FROM generate_series(1, $1::int) AS g`,
    [LIVE]
  )
  for (const def of defs) await schema.query(def)
  await schema.query('VACUUM ANALYZE task_sessions')
}

interface LiveState {
  count: number
  digest: string
}

const liveState = async (schema: TestSchema): Promise<LiveState> => {
  const { rows } = await schema.query<{ count: number; digest: string }>(
    `SELECT count(*)::int AS count,
            md5(string_agg(id || ':' || task_id || ':' || short_id || ':' || task_type || ':' || user_id || ':' || status || ':' ||
                           created_at::text || ':' || updated_at::text, ',' ORDER BY id)) AS digest
       FROM task_sessions WHERE status = 'active'`
  )
  return rows[0]!
}

const finishedLeft = async (schema: TestSchema) =>
  (await schema.query<{ n: number }>(`SELECT count(*)::int AS n FROM task_sessions WHERE status <> 'active'`)).rows[0]!.n

interface Readers {
  done: Promise<autocannon.Result>
  stop(): void
}

/** autocannon on GET /api/v1/task-sessions/task/{random live id}, for `seconds` or until stopped. */
function readers(base: string, seconds: number): Readers {
  let settle: (err: Error | null, result: autocannon.Result) => void = () => {}
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    settle = (err, result) => (err ? reject(err) : resolve(result))
  })
  const instance = autocannon(
    {
      url: base,
      connections: READERS,
      duration: seconds,
      requests: [
        {
          method: 'GET',
          headers,
          setupRequest: (req) => ({ ...req, path: `/api/v1/task-sessions/task/live-${1 + Math.floor(Math.random() * LIVE)}` })
        }
      ]
    },
    (err: Error | null, result) => settle(err, result)
  )
  return { done, stop: () => instance.stop() }
}

const schema = await createTestSchema(join(repoRoot, 'services/task-sessions/prisma/migrations'), 'bench_cleanup')
const ns = uniqueName('bench_cleanup')
let service: Awaited<ReturnType<typeof startNode>> | undefined
try {
  const loadStarted = Date.now()
  await fill(schema)
  console.log(`loaded ${fmt(FINISHED)} finished and ${fmt(LIVE)} live task sessions in ${fmt((Date.now() - loadStarted) / 1000, 1)} s`)
  const before = await liveState(schema)

  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  service = await startNode(
    'services/task-sessions/src/server.ts',
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'production',
      DATABASE_URL: schema.url,
      DATABASE_SCHEMA: schema.schema,
      DATABASE_POOL_SIZE: '10',
      REDIS_KEY_PREFIX: `${ns}:`,
      NATS_NAMESPACE: ns,
      JWT_SECRET: TEST_JWT_SECRET,
      TASK_EVENTS_ENABLED: 'false',
      TASK_SESSION_RETENTION_DAYS: '7',
      TASK_SESSION_CLEANUP_BATCH_SIZE: String(BATCH_SIZE)
    },
    `${base}/health`
  )

  await readers(base, 2).done // warm-up
  const baseline = await readers(base, BASELINE_SECONDS).done

  const during = readers(base, 600)
  const started = performance.now()
  const res = await fetch(`${base}/internal/cleanup`, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ batchSize: BATCH_SIZE }),
    signal: AbortSignal.timeout(300_000)
  })
  const seconds = (performance.now() - started) / 1000
  during.stop()
  const load = await during.done
  if (res.status !== 200) throw new Error(`cleanup answered ${res.status}: ${await res.text()}`)
  const reply = (await res.json()) as { removed: number; batches: number; errors: number; durationMs: number }

  const after = await liveState(schema)
  const left = await finishedLeft(schema)
  const untouched = after.count === before.count && after.digest === before.digest && before.count === LIVE
  const readErrors = baseline.errors + baseline.non2xx + load.errors + load.non2xx
  const p99Ratio = load.latency.p99 / Math.max(baseline.latency.p99, 1)

  printTable(`bench/cleanup: task-session cleanup of ${fmt(FINISHED)} finished rows beside ${fmt(LIVE)} live ones, ${READERS} readers`, [
    {
      figure: 'rows removed',
      value: `${fmt(reply.removed)} in ${fmt(reply.batches)} batches of ${fmt(BATCH_SIZE)} (${reply.errors} errors)`,
      target: fmt(FINISHED),
      met: reply.removed === FINISHED && left === 0
    },
    {
      figure: 'total time',
      value: `${fmt(seconds, 1)} s (service: ${fmt(reply.durationMs / 1000, 1)} s)`,
      target: `≤ ${TARGET_SECONDS} s`,
      met: seconds <= TARGET_SECONDS
    },
    {
      figure: 'rows removed per second',
      value: fmt(reply.removed / seconds),
      target: `≥ ${fmt(FINISHED / TARGET_SECONDS)}`,
      met: reply.removed / seconds >= FINISHED / TARGET_SECONDS
    },
    {
      figure: 'readers before: p50 / p99',
      value: `${baseline.latency.p50} / ${baseline.latency.p99} ms (${fmt(baseline.requests.average)} req/s)`,
      target: ''
    },
    { figure: 'readers during: p50 / p99', value: `${load.latency.p50} / ${load.latency.p99} ms (${fmt(load.requests.average)} req/s)`, target: '' },
    { figure: 'p99 during / before', value: fmt(p99Ratio, 2), target: '≤ 2.00', met: p99Ratio <= 2 },
    { figure: 'reader errors and non-2xx', value: String(readErrors), target: '0', met: readErrors === 0 },
    {
      figure: 'live rows untouched',
      value: `${fmt(after.count)} rows, digest ${after.digest === before.digest ? 'equal' : 'CHANGED'}`,
      target: `${fmt(LIVE)}, equal`,
      met: untouched
    },
    { figure: 'finished rows left', value: fmt(left), target: '0', met: left === 0 }
  ])
} finally {
  if (service) await stop(service)
  await schema.drop()
  // Best effort: what is left of a run's own prefix or namespace harms nothing.
  await deleteRedisKeys('redis://127.0.0.1:6379', `${ns}:`).catch(() => undefined)
  await deleteStreams('nats://127.0.0.1:4222', ns).catch(() => undefined)
}
