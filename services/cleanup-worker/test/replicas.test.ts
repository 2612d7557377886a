import t from 'tap'
import { waitFor } from '@platform/kit/testing'
import { build, fakeService, replies, runsOf, shared } from './helper.js'

const EVERY_MS = 400

/** cleanup_runs_total{kind="task_sessions",status="succeeded"} in one replica's registry (what its /metrics shows). */
async function succeededOn(app: Awaited<ReturnType<typeof build>>['app']): Promise<number> {
  const text = await app.metrics.getSingleMetricAsString('cleanup_runs_total')
  const m = /^cleanup_runs_total\{kind="task_sessions",status="succeeded"\} (\d+)$/m.exec(text)
  return Number(m?.[1] ?? 0)
}

t.test('two replicas: one scheduler per kind, and every scheduled iteration runs exactly once', async (t) => {
  const task = await fakeService(t, { 'POST /internal/cleanup': { status: 200, body: replies.task(1), delayMs: 30 } })
  const deployment = await shared(t)
  const env = {
    TASK_SESSIONS_URL: task.url,
    CLEANUP_SCHEDULES: 'task_sessions',
    SESSION_CLEANUP_INTERVAL_MINUTES: String(EVERY_MS / 60_000)
  }
  const a = await build(t, env, deployment)
  const b = await build(t, env, deployment)
  t.same(
    (await a.app.cleanupQueue.queue.getJobSchedulers()).map((s) => [s.key, s.every]),
    [['cleanup-task_sessions', EVERY_MS]],
    'both upserted: still one scheduler'
  )

  await waitFor(async () => (await runsOf(deployment.schema, 'task_sessions')).filter((r) => r.status === 'succeeded').length >= 6, 30_000)
  // Closing waits for the runs in flight; with both replicas closed nothing can run any more.
  await Promise.all([a.close(), b.close()])

  const runs = await runsOf(deployment.schema, 'task_sessions')
  t.ok(runs.length >= 6, `${runs.length} runs`)
  t.same(
    runs.map((r) => [r.status, r.attempts, r.removed]),
    runs.map(() => ['succeeded', 1, 1]),
    'each run succeeded on its first attempt'
  )
  t.equal(task.calls.length, runs.length, 'the service was called once per run')
  const iterations = runs.map((r) => Number(/^repeat:cleanup-task_sessions:(\d+)$/.exec(r.job_id)?.[1])).sort((x, y) => x - y)
  t.equal(new Set(iterations).size, iterations.length, 'no iteration ran twice')
  // Not asserted: that no iteration is skipped. Each upsert re-bases the schedule, and BullMQ skips an
  // iteration whose time passed while the workers were busy (no catch-up bursts).
  t.equal((await succeededOn(a.app)) + (await succeededOn(b.app)), runs.length, "the replicas' own counters add up to the runs")
})
