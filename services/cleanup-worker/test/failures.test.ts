import t from 'tap'
import { bearer, collectEvents, recordedSleep, testToken, waitFor } from '@platform/kit/testing'
import { build, fakeService, ofRun, replies, runsOf } from './helper.js'

const admin = bearer(testToken('admin-1', ['admin']))
const runNow = (kind = 'task_sessions') => ({ method: 'POST' as const, url: '/api/v1/admin/cleanup/run', headers: admin, payload: { kind } })
const unavailable = { status: 503, body: { error: 'Service Unavailable', message: 'db down', code: 'DATABASE_UNAVAILABLE', requestId: 'x' } }

t.test('a failing call is retried with exponential backoff inside the run', async (t) => {
  const task = await fakeService(t, { 'POST /internal/cleanup': [unavailable, unavailable, { status: 200, body: replies.task(4) }] })
  // The waits are recorded, not slept: the exact delays the client chose.
  const { waits, sleep } = recordedSleep()
  const env = {
    TASK_SESSIONS_URL: task.url,
    CLEANUP_CALL_RETRIES: '3',
    CLEANUP_RETRY_BASE_MS: '50',
    CLEANUP_RETRY_MAX_MS: '1000',
    CLEANUP_BREAKER_MIN_VOLUME: '10'
  }
  const { app } = await build(t, env, undefined, { sleep })
  const res = await app.inject(runNow())
  t.equal(res.statusCode, 200)
  t.match(res.json(), { status: 'succeeded', removed: 4, attempts: 1, error: null })
  t.equal(task.calls.length, 3)
  t.same(waits, [50, 100], 'the base, then twice the base')
})

t.test('a service down: retried, recorded as failed with its event, and the next scheduled run is fine', async (t) => {
  const task = await fakeService(t, { 'POST /internal/cleanup': { status: 200, body: replies.task(3) } })
  await task.down()
  const { app, schema, config } = await build(t, {
    TASK_SESSIONS_URL: task.url,
    CLEANUP_SCHEDULES: 'task_sessions',
    SESSION_CLEANUP_INTERVAL_MINUTES: '0.015', // 900 ms
    CLEANUP_CALL_RETRIES: '2',
    CLEANUP_JOB_ATTEMPTS: '2',
    CLEANUP_JOB_BACKOFF_MS: '50'
  })
  const events = await collectEvents(config.NATS_URL, config.NATS_NAMESPACE, 'cleanup')
  t.teardown(() => events.close())

  const failed = await waitFor(async () => (await runsOf(schema)).find((r) => r.status === 'failed'), 30_000)
  t.match(failed, { kind: 'task_sessions', trigger: 'scheduled', status: 'failed', removed: 0, errors: 0, attempts: 2 }, 'both BullMQ attempts used')
  t.match(failed.error, /^task-sessions (is unreachable|is failing: its circuit is open)$/)
  const failedEvent = await waitFor(() => events.events.find(ofRun(failed.id)))
  t.match(failedEvent.data, { kind: 'task_sessions', status: 'failed', attempts: 2, removed: 0, error: failed.error })

  await task.up()
  const ok = await waitFor(async () => (await runsOf(schema)).find((r) => r.status === 'succeeded'), 30_000)
  t.match(ok, { kind: 'task_sessions', trigger: 'scheduled', status: 'succeeded', removed: 3, errors: 0, error: null })
  t.not(ok.id, failed.id, 'a later run, not the failed one')
  t.ok(task.calls.length >= 1)
  t.equal(app.services.breakerState('task-sessions'), 'closed', 'the breaker closed again')
  const metrics = await app.metrics.getSingleMetricAsString('cleanup_failures_total')
  t.match(metrics, /cleanup_failures_total\{kind="task_sessions"\} [1-9]/)
})

t.test('partial failure: the errors a service reports are recorded and summed, and the run still succeeds', async (t) => {
  const task = await fakeService(t, {
    'POST /internal/cleanup': [
      { status: 200, body: replies.task(10, 2) },
      { status: 200, body: replies.task(5, 3) }
    ]
  })
  const { app, schema } = await build(t, { TASK_SESSIONS_URL: task.url })
  const first = await app.inject(runNow())
  const second = await app.inject(runNow())
  t.match(first.json(), { status: 'succeeded', removed: 10, errors: 2 })
  t.match(second.json(), { status: 'succeeded', removed: 5, errors: 3 })
  t.same(
    (await runsOf(schema)).map((r) => [r.status, r.removed, r.errors]),
    [
      ['succeeded', 10, 2],
      ['succeeded', 5, 3]
    ]
  )
  t.match(await app.metrics.getSingleMetricAsString('cleanup_row_errors_total'), /cleanup_row_errors_total\{kind="task_sessions"\} 5$/m)
  t.match(await app.metrics.getSingleMetricAsString('cleanup_removed_total'), /cleanup_removed_total\{kind="task_sessions"\} 15$/m)
})

t.test('a 4xx is not retried (neither the call nor the job), and a slow service times out', async (t) => {
  const task = await fakeService(t, {
    'POST /internal/cleanup': { status: 403, body: { error: 'Forbidden', message: 'no', code: 'FORBIDDEN', requestId: 'x' } }
  })
  const chat = await fakeService(t, { 'POST /internal/cleanup': { status: 200, body: replies.chat(1, 1), delayMs: 1500 } })
  const { app } = await build(t, {
    TASK_SESSIONS_URL: task.url,
    CHAT_URL: chat.url,
    CLEANUP_CALL_RETRIES: '2',
    CLEANUP_JOB_ATTEMPTS: '3',
    CLEANUP_CALL_TIMEOUT_MS: '200',
    CLEANUP_RUN_WAIT_MS: '1000',
    CLEANUP_BREAKER_MIN_VOLUME: '20'
  })
  const refused = await app.inject(runNow())
  t.equal(refused.statusCode, 200)
  t.match(refused.json(), { status: 'failed', attempts: 1, error: 'task-sessions answered 403 FORBIDDEN' })
  t.equal(task.calls.length, 1)

  const slow = await app.inject({ ...runNow('chat_sessions') })
  t.equal(slow.statusCode, 202, 'still retrying when the wait ends')
  const done = await waitFor(async () => {
    const r = await app.inject({ method: 'GET', url: `/api/v1/admin/cleanup/runs/${slow.json().id}`, headers: admin })
    return r.json().status === 'failed' ? r.json() : null
  }, 30_000)
  t.match(done, { kind: 'chat_sessions', status: 'failed', attempts: 3, error: 'chat did not answer within 200 ms' })
})

t.test('a job with data outside the contract is dropped without a run', async (t) => {
  const { app, schema } = await build(t)
  const job = await app.cleanupQueue.queue.add('bogus', { kind: 'everything', trigger: 'scheduled' }, { attempts: 3 })
  const state = await waitFor(async () => {
    const s = await job.getState()
    return s === 'failed' ? s : null
  })
  t.equal(state, 'failed')
  const failed = await app.cleanupQueue.queue.getJob(job.id!)
  t.equal(failed?.failedReason, 'invalid cleanup job data')
  t.equal(failed?.attemptsMade, 1, 'not retried')
  t.same(await runsOf(schema), [])
})
