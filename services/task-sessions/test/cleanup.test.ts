import t from 'tap'
import { bearer, testToken } from '@platform/kit/testing'
import { build, sessionStates } from './helper.js'

const DAY = 86_400_000

t.test('POST /internal/cleanup removes finished sessions past retention in batches, and keeps active and recent ones', async (t) => {
  const { app, schema } = await build(t, { TASK_EVENTS_ENABLED: 'false' })
  const insert = (taskId: string, status: string, ageMs: number, taskType = 'scenario_generation') =>
    schema.query(
      `INSERT INTO task_sessions (task_id, short_id, task_type, status, created_at, updated_at)
       VALUES ($1, 'c1', $2, $3, now() - make_interval(secs => $4), now())`,
      [taskId, taskType, status, ageMs / 1000]
    )
  for (let i = 0; i < 5; i++) await insert(`old-completed-${i}`, 'completed', 8 * DAY + i * 1000)
  await insert('old-failed-0', 'failed', 9 * DAY)
  await insert('old-failed-1', 'failed', 30 * DAY)
  await insert('old-active', 'active', 10 * DAY, 'video_generation')
  await insert('recent-completed', 'completed', 6 * DAY)
  await insert('fresh-failed', 'failed', 3_600_000)
  await insert('fresh-active', 'active', 0, 'image_analysis')
  await schema.query(
    `INSERT INTO finished_tasks (task_id, task_type, outcome, finished_at) VALUES
       ('gone-1', 'image_analysis', 'completed', now() - interval '8 days'),
       ('kept-1', 'image_analysis', 'completed', now() - interval '1 day')`
  )
  await schema.query(
    `INSERT INTO scenario_saves (short_id, saved_at, recorded_at) VALUES
       ('gone-s', now() - interval '8 days', now() - interval '8 days'), ('kept-s', now(), now())`
  )

  const cleanup = (payload?: object, token = testToken('cleanup-worker', ['service'])) =>
    app.inject({ method: 'POST', url: '/internal/cleanup', headers: bearer(token), ...(payload ? { payload } : {}) })

  for (const roles of [['user'], ['admin']]) {
    const res = await cleanup({}, testToken('x', roles))
    t.equal(res.statusCode, 403, `${roles.join(',')} may not run it`)
    t.equal(res.json().code, 'FORBIDDEN')
  }
  t.equal((await cleanup({ batchSize: 0 })).json().code, 'VALIDATION_ERROR')
  t.equal((await cleanup({ olderThanSeconds: -1 })).json().code, 'VALIDATION_ERROR')

  const res = await cleanup({ batchSize: 2 })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body, { removed: 7, batches: 4, errors: 0, finishedTasksPurged: 2 })
  t.type(body.durationMs, 'number')
  t.same(await sessionStates(schema), ['fresh-active:active', 'fresh-failed:failed', 'old-active:active', 'recent-completed:completed'])
  t.same((await schema.query('SELECT task_id FROM finished_tasks')).rows, [{ task_id: 'kept-1' }])
  t.same((await schema.query('SELECT short_id FROM scenario_saves')).rows, [{ short_id: 'kept-s' }])

  const again = (await cleanup()).json()
  t.match(again, { removed: 0, batches: 0, errors: 0, finishedTasksPurged: 0 }, 'an empty POST uses the defaults; nothing left to do')

  t.match((await cleanup({ olderThanSeconds: 60 })).json(), { removed: 2, batches: 1, errors: 0 }, 'olderThanSeconds overrides the retention')
  t.same(await sessionStates(schema), ['fresh-active:active', 'old-active:active'], 'active sessions are never cleaned up')
})

t.test('GET /internal/cleanup/stats reports live, expired and mean duration for the cleanup worker', async (t) => {
  const { app, schema } = await build(t, { TASK_EVENTS_ENABLED: 'false' })
  await schema.query(
    `INSERT INTO task_sessions (task_id, short_id, task_type, status, created_at, updated_at) VALUES
       ('a', 's', 'image_analysis', 'active', now(), now()),
       ('b', 's', 'image_analysis', 'active', now() - interval '30 days', now()),
       ('c', 's', 'scenario_generation', 'completed', now() - interval '8 days', now() - interval '8 days' + interval '100 seconds'),
       ('d', 's', 'scenario_generation', 'failed', now() - interval '1 day', now() - interval '1 day' + interval '300 seconds')`
  )
  const res = await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: bearer(testToken('cleanup-worker', ['service'])) })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { task_sessions: { active: 2, expired: 1, averageSessionDurationSeconds: 200 } })
  const user = await app.inject({ method: 'GET', url: '/internal/cleanup/stats', headers: bearer(testToken('u1')) })
  t.equal(user.statusCode, 403)
})
