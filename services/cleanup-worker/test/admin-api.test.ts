import t from 'tap'
import { badTokens, bearer, startRedisServer, testClock, testToken, waitFor } from '@platform/kit/testing'
import { build, fakeService, replies, runsOf } from './helper.js'

const admin = bearer(testToken('admin-1', ['admin']))
const routes = [
  { method: 'GET' as const, url: '/api/v1/admin/cleanup/runs' },
  { method: 'GET' as const, url: '/api/v1/admin/cleanup/runs/6f9619ff-8b86-4d01-b42d-00cf4fc964ff' },
  { method: 'POST' as const, url: '/api/v1/admin/cleanup/run', payload: { kind: 'login_sessions' } },
  { method: 'GET' as const, url: '/api/v1/admin/cleanup/metrics' }
]

t.test('admin only: 401 without a valid token, 403 for a user or a service, before any validation', async (t) => {
  const { app, schema } = await build(t)
  for (const r of routes) {
    const none = await app.inject(r)
    t.equal(none.statusCode, 401, `${r.method} ${r.url} without a token`)
    t.equal(none.json().code, 'TOKEN_MISSING')
    const expired = await app.inject({ ...r, headers: bearer(badTokens.expired()) })
    t.equal(expired.json().code, 'TOKEN_EXPIRED')
    const forged = await app.inject({ ...r, headers: bearer(badTokens.wrongSecret()) })
    t.equal(forged.json().code, 'TOKEN_INVALID')
    for (const roles of [['user'], ['service']]) {
      const res = await app.inject({ ...r, headers: bearer(testToken('u1', roles)) })
      t.equal(res.statusCode, 403, `${r.method} ${r.url} as ${roles[0]}`)
      t.equal(res.json().code, 'FORBIDDEN')
    }
  }
  const invalid = await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', payload: { nonsense: true } })
  t.equal(invalid.json().code, 'TOKEN_MISSING', 'a caller without a token learns nothing about the body')
  t.same((await schema.query('SELECT count(*)::int AS n FROM cleanup_runs')).rows, [{ n: 0 }], 'nothing was run')
})

t.test('bad input: unknown kind has its own code, the rest are validation errors', async (t) => {
  const { app } = await build(t)
  const post = (payload: object) => app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: admin, payload })

  const unknown = await post({ kind: 'everything' })
  t.equal(unknown.statusCode, 400)
  t.same(unknown.json(), {
    error: 'Bad Request',
    code: 'UNKNOWN_CLEANUP_KIND',
    message: 'Unknown cleanup kind "everything": use one of login_sessions, task_sessions, chat_sessions, named_sessions',
    requestId: unknown.json().requestId
  })
  const filter = await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs?kind=everything', headers: admin })
  t.equal(filter.statusCode, 400)
  t.equal(filter.json().code, 'UNKNOWN_CLEANUP_KIND')

  for (const payload of [
    {},
    { kind: 'login_sessions', olderThanSeconds: -1 },
    { kind: 'login_sessions', olderThanSeconds: 1.5 },
    { kind: 'login_sessions', extra: 1 },
    { kind: 5 }
  ]) {
    const res = await post(payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.json().code, 'VALIDATION_ERROR')
  }
  const notJson = await app.inject({
    method: 'POST',
    url: '/api/v1/admin/cleanup/run',
    headers: { ...admin, 'content-type': 'application/json' },
    payload: '{'
  })
  t.equal(notJson.json().code, 'INVALID_JSON')
  const badId = await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs/42', headers: admin })
  t.equal(badId.json().code, 'VALIDATION_ERROR')
  const missing = await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs/6f9619ff-8b86-4d01-b42d-00cf4fc964ff', headers: admin })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'CLEANUP_RUN_NOT_FOUND')
  const badCursor = await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs?cursor=nope', headers: admin })
  t.equal(badCursor.json().code, 'INVALID_CURSOR')
  const badLimit = await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs?limit=101', headers: admin })
  t.equal(badLimit.json().code, 'VALIDATION_ERROR')
})

t.test('run history: newest first, paged by cursor, filtered by kind, status and trigger', async (t) => {
  const { app, schema } = await build(t)
  const rows: Array<[string, string, string, string]> = [
    ['00000000-0000-4000-8000-000000000001', 'login_sessions', 'succeeded', 'scheduled'],
    ['00000000-0000-4000-8000-000000000002', 'chat_sessions', 'failed', 'scheduled'],
    ['00000000-0000-4000-8000-000000000003', 'login_sessions', 'succeeded', 'manual'],
    ['00000000-0000-4000-8000-000000000004', 'chat_sessions', 'succeeded', 'scheduled'],
    ['00000000-0000-4000-8000-000000000005', 'login_sessions', 'failed', 'scheduled']
  ]
  for (const [i, [id, kind, status, trigger]] of rows.entries()) {
    await schema.query(
      `INSERT INTO cleanup_runs (id, job_id, kind, trigger, status, created_at, started_at, finished_at, removed, errors, attempts, error)
       VALUES ($1::uuid, $2, $3::"CleanupKind", $5::"CleanupTrigger", $4::"CleanupRunStatus", $6, $6, $6, $7, 0, 1, $8)`,
      [id, id, kind, status, trigger, new Date(Date.UTC(2026, 0, 1, 0, i)), i, status === 'failed' ? 'sessions is unreachable' : null]
    )
  }
  const page = async (qs: string) => (await app.inject({ method: 'GET', url: `/api/v1/admin/cleanup/runs?${qs}`, headers: admin })).json()
  const ids = (p: { runs: Array<{ id: string }> }) => p.runs.map((r) => Number(r.id.slice(-1)))

  const first = await page('limit=2')
  t.same(ids(first), [5, 4])
  const second = await page(`limit=2&cursor=${first.nextCursor}`)
  t.same(ids(second), [3, 2])
  const third = await page(`limit=2&cursor=${second.nextCursor}`)
  t.same(ids(third), [1])
  t.equal(third.nextCursor, null)
  t.same(first.runs[0], {
    id: '00000000-0000-4000-8000-000000000005',
    kind: 'login_sessions',
    trigger: 'scheduled',
    status: 'failed',
    olderThanSeconds: null,
    createdAt: '2026-01-01T00:04:00.000Z',
    startedAt: '2026-01-01T00:04:00.000Z',
    finishedAt: '2026-01-01T00:04:00.000Z',
    removed: 4,
    errors: 0,
    attempts: 1,
    error: 'sessions is unreachable',
    details: null
  })
  t.same(ids(await page('kind=login_sessions')), [5, 3, 1])
  t.same(ids(await page('kind=chat_sessions&status=succeeded')), [4])
  t.same(ids(await page('trigger=manual')), [3])
  t.same(ids(await page('status=failed&limit=1')), [5])
})

t.test('run-now while Redis is down: 503 QUEUE_UNAVAILABLE with Retry-After, nothing left recorded; history still answers', async (t) => {
  const redis = await startRedisServer()
  t.teardown(() => redis.dispose())
  const { app, schema } = await build(t, { REDIS_URL: redis.url })
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).json().checks.queue, 'up')
  await redis.stop()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.queue === 'down')

  const res = await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: admin, payload: { kind: 'login_sessions' } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'QUEUE_UNAVAILABLE')
  t.equal(res.headers['retry-after'], '5')
  t.same((await schema.query('SELECT count(*)::int AS n FROM cleanup_runs')).rows, [{ n: 0 }])
  const ready = (await app.inject({ method: 'GET', url: '/ready' })).json()
  t.equal(ready.status, 'degraded')
  t.equal((await app.inject({ method: 'GET', url: '/api/v1/admin/cleanup/runs', headers: admin })).statusCode, 200)

  await redis.start()
  await waitFor(async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.queue === 'up', 10_000)
  const again = await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: admin, payload: { kind: 'login_sessions' } })
  t.equal(again.statusCode, 200, 'queued again once Redis is back')
  t.match(
    again.json(),
    { status: 'failed', error: /^sessions (is unreachable|is failing: its circuit is open)$/ },
    'and run (nothing listens for sessions here)'
  )
})

t.test('health: degraded above ACTIVE_SESSIONS_ALERT active sessions of a kind', async (t) => {
  const stats = (active: number) => ({
    login_sessions: { active, expired: 3, averageSessionDurationSeconds: 60 },
    named_sessions: { active: 2, expired: 0, averageSessionDurationSeconds: 0 }
  })
  let active = 1000
  const sessions = await fakeService(t, { 'GET /internal/cleanup/stats': () => ({ status: 200, body: stats(active) }) })
  const { app } = await build(t, { SESSIONS_URL: sessions.url })

  const healthy = (await app.inject({ method: 'GET', url: '/health' })).json()
  t.equal(healthy.status, 'healthy')
  t.same(healthy.kinds.login_sessions, {
    scheduled: false,
    intervalSeconds: null,
    lastSuccessAt: null,
    overdue: false,
    activeSessions: 1000,
    overThreshold: false
  })
  t.equal(healthy.kinds.task_sessions.activeSessions, null, 'unknown where the service gave no figures')
  t.same(healthy.reasons, [])
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).json().checks.active_sessions, 'up')

  active = 1001
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.statusCode, 200, 'liveness stays 200')
  t.equal(res.json().status, 'degraded')
  t.same(res.json().reasons, ['login_sessions: 1001 active sessions (alert above 1000)'])
  t.equal(res.json().kinds.login_sessions.overThreshold, true)
  const ready = (await app.inject({ method: 'GET', url: '/ready' })).json()
  t.equal(ready.status, 'degraded')
  t.equal(ready.checks.active_sessions, 'down')
  t.equal(ready.checks.postgres, 'up')
})

t.test('health: degraded when a schedule has not succeeded for two intervals, healthy again after a success', async (t) => {
  const task = await fakeService(t, {
    'POST /internal/cleanup': { status: 503, body: { error: 'Service Unavailable', message: 'x', code: 'DATABASE_UNAVAILABLE', requestId: 'x' } }
  })
  // An hourly schedule (BullMQ runs its first iteration at once, then not again during the test) and a
  // stopped clock for the health's "two intervals": the test moves it by hours instead of waiting.
  const clock = testClock().freeze()
  const { app, schema } = await build(
    t,
    { TASK_SESSIONS_URL: task.url, CLEANUP_SCHEDULES: 'task_sessions', SESSION_CLEANUP_INTERVAL_MINUTES: '60' },
    undefined,
    { now: clock.now }
  )
  const health = async () => (await app.inject({ method: 'GET', url: '/health' })).json()
  const schedules = async () => (await app.inject({ method: 'GET', url: '/ready' })).json().checks.schedules
  await waitFor(async () => (await runsOf(schema, 'task_sessions')).some((r) => r.status === 'failed'), 30_000)
  await waitFor(() => app.nats.connected, 20_000)
  t.match(
    (await health()).kinds.task_sessions,
    { scheduled: true, intervalSeconds: 3600, lastSuccessAt: null, overdue: false },
    'failed, but not for two intervals yet'
  )

  clock.advance(2 * 3_600_000)
  t.equal((await health()).status, 'healthy', 'exactly two intervals since the start is not overdue yet')
  clock.advance(1)
  const degraded = await health()
  t.equal(degraded.status, 'degraded')
  t.same(degraded.reasons, ['task_sessions: no successful cleanup for two intervals'])
  t.match(degraded.kinds.task_sessions, { scheduled: true, intervalSeconds: 3600, lastSuccessAt: null, overdue: true })
  t.equal(await schedules(), 'down')

  task.script['POST /internal/cleanup'] = { status: 200, body: replies.task(1) }
  const run = (await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: admin, payload: { kind: 'task_sessions' } })).json()
  t.match(run, { status: 'succeeded', trigger: 'manual' })
  const lastSuccess = Date.parse(run.finishedAt)
  clock.freeze(lastSuccess + 2 * 3_600_000)
  const healthy = await health()
  t.equal(healthy.status, 'healthy', 'a success counts, a manual one too: two intervals from it are not overdue')
  t.equal(healthy.kinds.task_sessions.lastSuccessAt, run.finishedAt)
  t.equal(await schedules(), 'up')
  clock.advance(1)
  t.equal((await health()).status, 'degraded', 'and past two intervals from it, overdue again')
})

t.test('Prometheus: run duration histogram, removed and failures by kind, last success timestamp', async (t) => {
  const task = await fakeService(t, {
    'POST /internal/cleanup': [
      { status: 200, body: replies.task(9) },
      { status: 400, body: { code: 'VALIDATION_ERROR' } }
    ]
  })
  const { app } = await build(t, { TASK_SESSIONS_URL: task.url })
  const runs = []
  for (let i = 0; i < 2; i++)
    runs.push((await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: admin, payload: { kind: 'task_sessions' } })).json())
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(text, /^cleanup_run_duration_seconds_count\{kind="task_sessions",status="succeeded"\} 1$/m)
  t.match(text, /^cleanup_run_duration_seconds_count\{kind="task_sessions",status="failed"\} 1$/m)
  t.match(text, /^cleanup_removed_total\{kind="task_sessions"\} 9$/m)
  t.match(text, /^cleanup_removed_total\{kind="chat_sessions"\} 0$/m)
  t.match(text, /^cleanup_failures_total\{kind="task_sessions"\} 1$/m)
  t.match(text, /^cleanup_runs_total\{kind="task_sessions",status="succeeded"\} 1$/m)
  const last = Number(/^cleanup_last_success_timestamp_seconds\{kind="task_sessions"\} ([\d.e+]+)$/m.exec(text)?.[1])
  t.equal(last, Date.parse(runs[0].finishedAt) / 1000, 'when the succeeded run finished, from the run history')
  t.notMatch(text, /cleanup_last_success_timestamp_seconds\{kind="chat_sessions"\}/, 'no figure for a kind that never succeeded')
})
