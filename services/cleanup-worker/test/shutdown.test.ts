import t from 'tap'
import { bearer, collectEvents, testToken, waitFor } from '@platform/kit/testing'
import { build, callJson, fakeService, idOf, ofRun, replies, runsOf, shared, startWorker, type FakeService } from './helper.js'

const adminToken = testToken('admin-1', ['admin'])
/** Calls of the cleanup itself (a worker's /health also asks for stats). */
const cleanups = (fake: FakeService) => fake.calls.filter((c) => c.path === '/internal/cleanup').length
const slowCleanup = (ms: number, removed = 6) => ({ 'POST /internal/cleanup': { status: 200, body: replies.task(removed), delayMs: ms } })

t.test('closing the app mid-run lets the running job finish: its outcome and event are recorded', async (t) => {
  // The service answers only once the worker has begun closing: the call is in flight during the close.
  let release = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const task = await fakeService(t, { 'POST /internal/cleanup': { status: 200, body: replies.task(6), until: held } })
  const { app, schema, config, close } = await build(t, { TASK_SESSIONS_URL: task.url, CLEANUP_RUN_WAIT_MS: '0' })
  const events = await collectEvents(config.NATS_URL, config.NATS_NAMESPACE, 'cleanup')
  t.teardown(() => events.close())

  const res = await app.inject({ method: 'POST', url: '/api/v1/admin/cleanup/run', headers: bearer(adminToken), payload: { kind: 'task_sessions' } })
  t.equal(res.statusCode, 202)
  t.equal(res.headers.location, `/api/v1/admin/cleanup/runs/${res.json().id}`)
  t.match(res.json(), { status: 'queued', attempts: 0, startedAt: null })
  await waitFor(() => cleanups(task) === 1)
  app.cleanupQueue.worker.once('closing', () => release())
  await close()
  t.same(
    (await runsOf(schema)).map((r) => [r.id, r.status, r.removed, r.attempts]),
    [[res.json().id, 'succeeded', 6, 1]],
    'close waited for the call in flight'
  )
  const event = await waitFor(() => events.events.find(ofRun(res.json().id)))
  t.match(event.data, { status: 'succeeded', removed: 6 }, 'published before NATS closed')
  t.equal(cleanups(task), 1)
})

t.test('SIGTERM to the worker process: the running job finishes and is recorded, then the process exits 0', async (t) => {
  const task = await fakeService(t, slowCleanup(1500))
  const deployment = await shared(t)
  const worker = await startWorker(t, deployment, { TASK_SESSIONS_URL: task.url, CLEANUP_RUN_WAIT_MS: '0' })
  const res = await callJson(`${worker.url}/api/v1/admin/cleanup/run`, 'POST', adminToken, { kind: 'task_sessions' })
  t.equal(res.status, 202)
  await waitFor(() => cleanups(task) === 1)
  t.equal(await worker.stop('SIGTERM'), 0)
  t.same(
    (await runsOf(deployment.schema)).map((r) => [r.status, r.removed, r.attempts]),
    [['succeeded', 6, 1]]
  )
})

t.test('a worker killed mid-run: BullMQ hands the job to another replica, which runs it again harmlessly', async (t) => {
  // The service answers once the doomed worker is dead: its run is certainly cut off mid-call.
  let release = () => {}
  const held = new Promise<void>((resolve) => (release = resolve))
  const task = await fakeService(t, { 'POST /internal/cleanup': { status: 200, body: replies.task(2), until: held } })
  const deployment = await shared(t)
  // A short lock, so the survivor takes over soon (a lock is renewed every half of it while a job runs).
  const env = { TASK_SESSIONS_URL: task.url, CLEANUP_RUN_WAIT_MS: '0', CLEANUP_JOB_LOCK_MS: '2000', CLEANUP_STALLED_INTERVAL_MS: '500' }
  const doomed = await startWorker(t, deployment, env)
  const res = await callJson(`${doomed.url}/api/v1/admin/cleanup/run`, 'POST', adminToken, { kind: 'task_sessions' })
  const runId = idOf(res.json)
  await waitFor(() => cleanups(task) === 1)
  await doomed.stop('SIGKILL')
  release()
  t.match(await runsOf(deployment.schema), [{ id: runId, status: 'running', attempts: 1 }], 'cut off while running')

  // The surviving replica; its own lock is long, so its run is never taken for stalled on a busy machine.
  await build(t, { ...env, CLEANUP_JOB_LOCK_MS: '30000' }, deployment)
  const done = await waitFor(async () => (await runsOf(deployment.schema)).find((r) => r.status === 'succeeded'), 30_000)
  t.match(done, { id: runId, status: 'succeeded', removed: 2, attempts: 2, error: null }, 'the same run, one more attempt')
  t.equal(cleanups(task), 2)
})
